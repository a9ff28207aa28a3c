# One Protea environment, composed from the modules in ../../modules. Each of
# envs/{dev,staging,prod} links this file, variables.tf and outputs.tf here (terraform/test
# checks it) and runs it as its own root; what differs between them is settings.tf and
# the state key in versions.tf.

locals {
  name  = "protea-${local.environment}"
  zones = local.availability_zones

  tags = {
    Project     = "protea"
    Environment = local.environment
    ManagedBy   = "terraform"
  }
}

module "kms" {
  source = "../../modules/kms"

  name                   = local.name
  deletion_window_days   = local.settings.kms_deletion_window_days
  key_administrator_arns = var.key_administrator_arns
}

module "network" {
  source = "../../modules/network"

  name                    = local.name
  cidr_block              = local.settings.vpc_cidr_block
  availability_zones      = local.zones
  flow_log_retention_days = local.settings.log_retention_days
  logs_kms_key_arn        = module.kms.logs_key_arn
}

module "archive" {
  source = "../../modules/archive"

  name                 = local.name
  kms_key_arn          = module.kms.archive_key_arn
  audit_retention_days = local.settings.audit_retention_days
}

module "governance" {
  source = "../../modules/governance"

  name                     = local.name
  archive_kms_key_arn      = module.kms.archive_key_arn
  logs_kms_key_arn         = module.kms.logs_key_arn
  access_log_bucket        = module.archive.access_log_bucket
  trail_log_retention_days = local.settings.log_retention_days
}

module "ecr" {
  source = "../../modules/ecr"

  repository_name = "${local.name}/gateway"
  kms_key_arn     = module.kms.archive_key_arn
}

module "edge" {
  source = "../../modules/edge"
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  vpc_cidr_block             = module.network.vpc_cidr_block
  public_subnet_ids          = module.network.public_subnet_ids
  api_domain_name            = var.api_domain_name
  origin_domain_name         = var.origin_domain_name
  route53_zone_id            = var.route53_zone_id
  cloudfront_certificate_arn = var.cloudfront_certificate_arn
  alb_certificate_arn        = var.alb_certificate_arn
  rate_limit_per_5_minutes   = local.settings.waf_rate_limit_per_5_minutes
  deletion_protection        = local.settings.deletion_protection
  access_log_bucket          = module.archive.access_log_bucket
  log_retention_days         = local.settings.log_retention_days
}

module "sessions" {
  source = "../../modules/sessions"

  table_name          = "${local.name}-sessions"
  kms_key_arn         = module.kms.data_key_arn
  deletion_protection = local.settings.deletion_protection
}

module "database" {
  source = "../../modules/database"

  name                                = local.name
  vpc_id                              = module.network.vpc_id
  subnet_ids                          = module.network.private_data_subnet_ids
  client_security_group_ids           = { gateway = module.service.security_group_id, rotation = module.secrets.rotation_security_group_id }
  availability_zones                  = local.zones
  instance_class                      = local.settings.aurora_instance_class
  instance_count                      = local.settings.aurora_instance_count
  kms_key_arn                         = module.kms.data_key_arn
  secrets_kms_key_arn                 = module.kms.secrets_key_arn
  logs_kms_key_arn                    = module.kms.logs_key_arn
  backup_retention_days               = local.settings.aurora_backup_retention_days
  performance_insights_retention_days = local.settings.performance_insights_retention_days
  deletion_protection                 = local.settings.deletion_protection
  skip_final_snapshot                 = !local.settings.deletion_protection
  log_retention_days                  = local.settings.log_retention_days
}

module "secrets" {
  source = "../../modules/secrets"

  name                 = local.name
  kms_key_arn          = module.kms.secrets_key_arn
  vpc_id               = module.network.vpc_id
  vpc_cidr_block       = module.network.vpc_cidr_block
  lambda_subnet_ids    = module.network.private_app_subnet_ids
  database_host        = module.database.writer_endpoint
  database_name        = module.database.database_name
  database_username    = local.database_username
  recovery_window_days = local.settings.secret_recovery_window_days
}

module "cache" {
  source = "../../modules/cache"

  name                      = local.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_data_subnet_ids
  client_security_group_ids = { gateway = module.service.security_group_id }
  node_type                 = local.settings.redis_node_type
  replicas_per_shard        = local.settings.redis_replicas
  auth_token                = module.secrets.redis_auth_token
  kms_key_arn               = module.kms.data_key_arn
  secrets_kms_key_arn       = module.kms.secrets_key_arn
  logs_kms_key_arn          = module.kms.logs_key_arn
  log_retention_days        = local.settings.log_retention_days
  snapshot_retention_days   = local.settings.redis_snapshot_retention_days
}

module "observability" {
  source = "../../modules/observability"

  name                      = local.name
  service_name              = local.service_name
  logs_kms_key_arn          = module.kms.logs_key_arn
  log_retention_days        = local.settings.log_retention_days
  alarm_emails              = var.alarm_emails
  latency_p99_slo_ms        = local.settings.latency_p99_slo_ms
  alb_arn_suffix            = module.edge.alb_arn_suffix
  target_group_arn_suffix   = module.edge.target_group_arn_suffix
  ecs_cluster_name          = module.service.cluster_name
  ecs_service_name          = module.service.service_name
  aurora_cluster_identifier = module.database.cluster_identifier
  redis_member_clusters     = module.cache.member_clusters
}

module "service" {
  source = "../../modules/service"

  name                    = local.name
  service_name            = local.service_name
  vpc_id                  = module.network.vpc_id
  vpc_cidr_block          = module.network.vpc_cidr_block
  subnet_ids              = module.network.private_app_subnet_ids
  s3_prefix_list_id       = module.network.s3_prefix_list_id
  dynamodb_prefix_list_id = module.network.dynamodb_prefix_list_id
  alb_security_group_id   = module.edge.alb_security_group_id
  target_group_arn        = module.edge.target_group_arn
  target_group_arn_suffix = module.edge.target_group_arn_suffix
  alb_arn_suffix          = module.edge.alb_arn_suffix
  image                   = "${module.ecr.repository_url}:${var.image_tag}"
  cpu                     = local.settings.task_cpu
  memory_mib              = local.settings.task_memory_mib
  gateway_threads         = local.settings.gateway_threads
  desired_count           = local.settings.min_tasks
  min_count               = local.settings.min_tasks
  max_count               = local.settings.max_tasks
  requests_per_target     = local.settings.requests_per_target_per_minute
  database_host           = module.database.writer_endpoint
  database_name           = module.database.database_name
  database_username       = local.database_username
  database_secret_arn     = module.secrets.database_secret_arn
  keys_secret_arn         = module.secrets.gateway_keys_secret_arn
  redis_url_secret_arn    = module.cache.redis_url_secret_arn
  secrets_kms_key_arn     = module.kms.secrets_key_arn
  sessions_table_arn      = module.sessions.table_arn
  sessions_table_name     = module.sessions.table_name
  data_kms_key_arn        = module.kms.data_key_arn
  gateway_log_group_name  = module.observability.gateway_log_group_name
  adot_log_group_name     = module.observability.adot_log_group_name
  logs_kms_key_arn        = module.kms.logs_key_arn

  audit_archive_bucket_name = module.archive.audit_archive_bucket
  audit_archive_bucket_arn  = module.archive.audit_archive_bucket_arn
  audit_archive_kms_key_arn = module.kms.archive_key_arn
}
