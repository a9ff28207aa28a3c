output "writer_endpoint" {
  description = "The cluster's writer endpoint (follows failover)."
  value       = aws_rds_cluster.this.endpoint
}

output "reader_endpoint" {
  description = "The cluster's reader endpoint."
  value       = aws_rds_cluster.this.reader_endpoint
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_rds_cluster.this.port
}

output "database_name" {
  description = "The gateway's database."
  value       = aws_rds_cluster.this.database_name
}

output "cluster_identifier" {
  description = "The cluster's id (CloudWatch DBClusterIdentifier dimension)."
  value       = aws_rds_cluster.this.cluster_identifier
}

output "cluster_resource_id" {
  description = "The cluster's resource id (for rds-db:connect IAM policies)."
  value       = aws_rds_cluster.this.cluster_resource_id
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed master user secret (break-glass and bootstrap only)."
  value       = aws_rds_cluster.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the cluster."
  value       = aws_rds_cluster.this.vpc_security_group_ids
}
