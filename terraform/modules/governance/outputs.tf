output "bucket" {
  description = "Bucket of CloudTrail log files and AWS Config deliveries."
  value       = module.bucket.id
}

output "trail_arn" {
  description = "The trail's ARN."
  value       = aws_cloudtrail.this.arn
}

output "trail_log_group_name" {
  description = "CloudWatch log group the trail streams to."
  value       = aws_cloudwatch_log_group.trail.name
}
