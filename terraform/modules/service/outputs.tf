output "cluster_name" {
  description = "The ECS cluster's name (CloudWatch ClusterName dimension)."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "The ECS service's name (CloudWatch ServiceName dimension)."
  value       = aws_ecs_service.gateway.name
}

output "task_definition_family" {
  description = "The task definition family (the release workflow registers new revisions of it)."
  value       = aws_ecs_task_definition.gateway.family
}

output "security_group_id" {
  description = "Security group of the tasks (Aurora and Redis admit it)."
  value       = aws_security_group.task.id
}

output "task_role_arn" {
  description = "The task role."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "The task execution role."
  value       = aws_iam_role.execution.arn
}
