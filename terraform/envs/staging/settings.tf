# What makes this environment staging: sizes, retention and protection. main.tf is shared.

locals {
  environment = "staging"
  region      = "af-south-1"
  # af-south-1's three zones, pinned so that a zone AWS adds later never moves a subnet.
  availability_zones = ["af-south-1a", "af-south-1b", "af-south-1c"]
  service_name       = "protea"
  database_username  = "protea"

  settings = {
    vpc_cidr_block                      = "10.20.0.0/16"
    deletion_protection                 = true
    kms_deletion_window_days            = 30
    secret_recovery_window_days         = 30
    log_retention_days                  = 365
    audit_retention_days                = 90
    waf_rate_limit_per_5_minutes        = 300000
    aurora_instance_class               = "db.r7g.large"
    aurora_instance_count               = 2
    aurora_backup_retention_days        = 14
    performance_insights_retention_days = 7
    redis_node_type                     = "cache.r7g.large"
    redis_replicas                      = 2
    redis_snapshot_retention_days       = 7
    task_cpu                            = 2048
    task_memory_mib                     = 4096
    gateway_threads                     = 2
    min_tasks                           = 3
    max_tasks                           = 9
    requests_per_target_per_minute      = 120000
    latency_p99_slo_ms                  = 250
  }
}
