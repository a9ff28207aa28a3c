output "table_name" {
  description = "The sessions table's name (PROTEA_SESSIONS_TABLE)."
  value       = aws_dynamodb_table.sessions.name
}

output "table_arn" {
  description = "The sessions table's ARN."
  value       = aws_dynamodb_table.sessions.arn
}
