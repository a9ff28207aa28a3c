output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's IPv4 range."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone (ALB, NAT gateways)."
  value       = [for subnet in aws_subnet.public : subnet.id]
}

output "private_app_subnet_ids" {
  description = "Private application subnets, one per zone (Fargate tasks, rotation lambda)."
  value       = [for subnet in aws_subnet.private_app : subnet.id]
}

output "private_data_subnet_ids" {
  description = "Private data subnets, one per zone, with no route out of the VPC (Aurora, Redis)."
  value       = [for subnet in aws_subnet.private_data : subnet.id]
}

output "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint, for security group egress rules."
  value       = aws_vpc_endpoint.gateway["s3"].prefix_list_id
}

output "dynamodb_prefix_list_id" {
  description = "Prefix list of the DynamoDB gateway endpoint, for security group egress rules."
  value       = aws_vpc_endpoint.gateway["dynamodb"].prefix_list_id
}
