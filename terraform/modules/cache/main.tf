# ElastiCache Redis for the gateway's global rate limits and its cache of DynamoDB
# sessions: one shard with replicas in the other zones, automatic failover, TLS in
# transit, KMS at rest, an AUTH token, daily snapshots and the slow log in CloudWatch.
# Also the Secrets Manager secret holding the gateway's whole `rediss://` URL, which the
# ECS task injects as PROTEA_REDIS_URL. It must never admit a client outside the named
# security groups or accept a plaintext connection.

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "Redis: TLS on 6379 from the gateway tasks only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-redis" }
}

resource "aws_vpc_security_group_ingress_rule" "redis" {
  for_each = var.client_security_group_ids

  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from a client security group"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = each.value
}

resource "aws_cloudwatch_log_group" "slow_log" {
  name              = "/aws/elasticache/${var.name}/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = var.name
  description                = "Protea rate limits and session cache"
  engine                     = "redis"
  engine_version             = var.engine_version
  node_type                  = var.node_type
  port                       = 6379
  num_cache_clusters         = var.replicas_per_shard + 1
  automatic_failover_enabled = true
  multi_az_enabled           = true
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = var.auth_token
  auth_token_update_strategy = "ROTATE"
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = "01:00-02:00"
  maintenance_window         = "sun:02:30-sun:03:30"
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.slow_log.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
}

resource "aws_secretsmanager_secret" "redis_url" {
  #checkov:skip=CKV2_AWS_57:The URL carries the ElastiCache auth token, which rotates with the replication group (ROTATE then SET; docs/runbooks.md), not through a rotation lambda.
  name        = "${var.name}/redis-url"
  description = "The gateway's PROTEA_REDIS_URL (rediss:// with the auth token)."
  kms_key_id  = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${var.auth_token}@${aws_elasticache_replication_group.this.primary_endpoint_address}:6379"
}
