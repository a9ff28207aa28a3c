output "database_secret_arn" {
  description = "ARN of the gateway's database credentials (RDS JSON)."
  value       = aws_secretsmanager_secret.database.arn
}

output "redis_auth_token_secret_arn" {
  description = "ARN of the ElastiCache auth token secret."
  value       = aws_secretsmanager_secret.redis_auth_token.arn
}

output "redis_auth_token" {
  description = "The ElastiCache auth token (for the replication group and the gateway's Redis URL secret)."
  value       = random_password.redis_auth_token.result
  sensitive   = true
}

output "gateway_keys_secret_arn" {
  description = "ARN of the gateway keys document secret (PROTEA_KEYS_SECRET)."
  value       = aws_secretsmanager_secret.gateway_keys.arn
}

output "rotation_security_group_id" {
  description = "Security group of the rotation lambda (the database admits it on 5432)."
  value       = aws_security_group.rotation.id
}
