output "data_key_arn" {
  description = "Key for Aurora, Performance Insights, DynamoDB and ElastiCache."
  value       = aws_kms_key.this["data"].arn
}

output "secrets_key_arn" {
  description = "Key for Secrets Manager secrets."
  value       = aws_kms_key.this["secrets"].arn
}

output "logs_key_arn" {
  description = "Key for CloudWatch Logs groups, the SNS alarm topic and CloudTrail."
  value       = aws_kms_key.this["logs"].arn
}

output "archive_key_arn" {
  description = "Key for the S3 audit archive, exports and governance buckets."
  value       = aws_kms_key.this["archive"].arn
}
