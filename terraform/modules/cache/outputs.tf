output "primary_endpoint" {
  description = "The replication group's primary endpoint (follows failover)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "replication_group_id" {
  description = "The replication group's id (CloudWatch dimension)."
  value       = aws_elasticache_replication_group.this.id
}

output "member_clusters" {
  description = "The node ids (CloudWatch CacheClusterId dimension), known before apply: ElastiCache names the nodes REPLICATION_GROUP-001, -002, ..."
  value       = [for index in range(var.replicas_per_shard + 1) : format("%s-%03d", var.name, index + 1)]
}

output "redis_url_secret_arn" {
  description = "ARN of the secret holding the gateway's whole rediss:// URL (PROTEA_REDIS_URL)."
  value       = aws_secretsmanager_secret.redis_url.arn
}

output "security_group_id" {
  description = "Security group of the replication group."
  value       = aws_security_group.redis.id
}
