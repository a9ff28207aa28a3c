# What makes this environment dev: sizes, retention and protection. main.tf is shared.

locals {
  environment = "dev"
  region      = "af-south-1"
  # af-south-1's three zones, pinned so that a zone AWS adds later never moves a subnet.
  availability_zones = ["af-south-1a", "af-south-1b", "af-south-1c"]
  service_name       = "protea"
  database_username  = "protea"

  settings = {
    vpc_cidr_block                      = "10.10.0.0/16"
    deletion_protection                 = false
    kms_deletion_window_days            = 7
    secret_recovery_window_days         = 7
    log_retention_days                  = 365
    audit_retention_days                = 30
    waf_rate_limit_per_5_minutes        = 30000
    aurora_instance_class               = "db.t4g.medium"
    aurora_instance_count               = 2
    aurora_backup_retention_days        = 7
    performance_insights_retention_days = 7
    redis_node_type                     = "cache.t4g.small"
    redis_replicas                      = 1
    redis_snapshot_retention_days       = 1
    task_cpu                            = 1024
    task_memory_mib                     = 2048
    gateway_threads                     = 1
    min_tasks                           = 2
    max_tasks                           = 4
    requests_per_target_per_minute      = 60000
    latency_p99_slo_ms                  = 250
  }
}
