# What makes this environment prod: sizes, retention and protection. main.tf is shared.

locals {
  environment = "prod"
  region      = "af-south-1"
  # af-south-1's three zones, pinned so that a zone AWS adds later never moves a subnet.
  availability_zones = ["af-south-1a", "af-south-1b", "af-south-1c"]
  service_name       = "protea"
  database_username  = "protea"

  settings = {
    vpc_cidr_block                      = "10.30.0.0/16"
    deletion_protection                 = true
    kms_deletion_window_days            = 30
    secret_recovery_window_days         = 30
    log_retention_days                  = 731
    audit_retention_days                = 2555
    waf_rate_limit_per_5_minutes        = 600000
    aurora_instance_class               = "db.r7g.2xlarge"
    aurora_instance_count               = 3
    aurora_backup_retention_days        = 35
    performance_insights_retention_days = 731
    redis_node_type                     = "cache.r7g.xlarge"
    redis_replicas                      = 2
    redis_snapshot_retention_days       = 14
    task_cpu                            = 4096
    task_memory_mib                     = 8192
    gateway_threads                     = 4
    min_tasks                           = 3
    max_tasks                           = 30
    requests_per_target_per_minute      = 240000
    latency_p99_slo_ms                  = 250
  }
}
