output "alb_security_group_id" {
  description = "Security group of the ALB (the tasks admit it on the container port)."
  value       = aws_security_group.alb.id
}

output "target_group_arn" {
  description = "Target group the ECS service registers its tasks in."
  value       = aws_lb_target_group.gateway.arn
}

output "alb_arn_suffix" {
  description = "The ALB's ARN suffix (CloudWatch LoadBalancer dimension)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffix" {
  description = "The target group's ARN suffix (CloudWatch TargetGroup dimension)."
  value       = aws_lb_target_group.gateway.arn_suffix
}

output "listener_arn" {
  description = "The HTTPS listener (the service depends on it before registering targets)."
  value       = aws_lb_listener.https.arn
}

output "cloudfront_distribution_id" {
  description = "The CloudFront distribution's id."
  value       = aws_cloudfront_distribution.this.id
}

output "cloudfront_domain_name" {
  description = "The distribution's own domain name."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "web_acl_arn" {
  description = "The WAF web ACL's ARN."
  value       = aws_wafv2_web_acl.this.arn
}

output "edge_logs_bucket" {
  description = "Bucket of ALB and CloudFront access logs."
  value       = aws_s3_bucket.edge_logs.id
}
