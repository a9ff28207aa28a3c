output "gateway_log_group_name" {
  description = "Log group of the gateway container."
  value       = aws_cloudwatch_log_group.gateway.name
}

output "adot_log_group_name" {
  description = "Log group of the ADOT collector sidecar."
  value       = aws_cloudwatch_log_group.adot.name
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "The CloudWatch dashboard's name."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
