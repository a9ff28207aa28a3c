output "api_url" {
  description = "The API's public base URL."
  value       = "https://${var.api_domain_name}"
}

output "ecr_repository_url" {
  description = "Where the release workflow pushes the gateway image."
  value       = module.ecr.repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster of the gateway service."
  value       = module.service.cluster_name
}

output "ecs_service_name" {
  description = "ECS service of the gateway."
  value       = module.service.service_name
}

output "task_definition_family" {
  description = "Task definition family the release workflow registers revisions of."
  value       = module.service.task_definition_family
}

output "database_writer_endpoint" {
  description = "Aurora writer endpoint."
  value       = module.database.writer_endpoint
}

output "database_master_secret_arn" {
  description = "RDS-managed master user secret (bootstrap and break-glass only)."
  value       = module.database.master_user_secret_arn
}

output "database_secret_arn" {
  description = "The gateway's rotated database credentials."
  value       = module.secrets.database_secret_arn
}

output "gateway_keys_secret_arn" {
  description = "Secret to put the output of `gateway keys-generate` in before the first deployment."
  value       = module.secrets.gateway_keys_secret_arn
}

output "audit_archive_bucket" {
  description = "Audit archive bucket (Object Lock, COMPLIANCE)."
  value       = module.archive.audit_archive_bucket
}

output "exports_bucket" {
  description = "Exports bucket."
  value       = module.archive.exports_bucket
}

output "alarm_topic_arn" {
  description = "SNS topic of every alarm."
  value       = module.observability.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of this environment."
  value       = module.observability.dashboard_name
}
