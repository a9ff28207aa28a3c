output "audit_archive_bucket" {
  description = "Name of the audit archive bucket (Object Lock, COMPLIANCE mode)."
  value       = module.audit_archive.id
}

output "audit_archive_bucket_arn" {
  description = "ARN of the audit archive bucket."
  value       = module.audit_archive.arn
}

output "exports_bucket" {
  description = "Name of the exports bucket."
  value       = module.exports.id
}

output "exports_bucket_arn" {
  description = "ARN of the exports bucket."
  value       = module.exports.arn
}

output "access_log_bucket" {
  description = "Name of the bucket that receives S3 server access logs."
  value       = aws_s3_bucket.access_logs.id
}
