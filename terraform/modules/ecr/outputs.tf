output "repository_url" {
  description = "The repository's URL (image = URL:TAG)."
  value       = aws_ecr_repository.gateway.repository_url
}

output "repository_arn" {
  description = "The repository's ARN."
  value       = aws_ecr_repository.gateway.arn
}
