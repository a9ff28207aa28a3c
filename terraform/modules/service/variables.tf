variable "name" {
  description = "Prefix of every resource name, e.g. protea-prod."
  type        = string
}

variable "service_name" {
  description = "The gateway's --service-name: the Service dimension of its CloudWatch metrics and the service.name of its traces."
  type        = string
  default     = "protea"
}

variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range (VPC endpoints, Aurora and Redis are inside it)."
  type        = string
}

variable "subnet_ids" {
  description = "Private-app subnets, one per zone; tasks spread over them."
  type        = list(string)
}

variable "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint (ECR image layers come from S3)."
  type        = string
}

variable "dynamodb_prefix_list_id" {
  description = "Prefix list of the DynamoDB gateway endpoint (sessions)."
  type        = string
}

variable "alb_security_group_id" {
  description = "Security group of the ALB, admitted on the container port."
  type        = string
}

variable "target_group_arn" {
  description = "Target group the service registers its tasks in."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "The target group's ARN suffix (for ALBRequestCountPerTarget)."
  type        = string
}

variable "alb_arn_suffix" {
  description = "The ALB's ARN suffix (for ALBRequestCountPerTarget)."
  type        = string
}

variable "image" {
  description = "The gateway image, repository URL and immutable tag (or digest)."
  type        = string
}

variable "adot_image" {
  description = "The AWS Distro for OpenTelemetry collector image of the sidecar."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.1"
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
}

variable "memory_mib" {
  description = "Task memory in MiB."
  type        = number
}

variable "gateway_threads" {
  description = "The gateway's --threads (cores it runs); match the task's vCPUs."
  type        = number
}

variable "desired_count" {
  description = "Tasks at deployment; autoscaling moves it between min_count and max_count."
  type        = number
}

variable "min_count" {
  description = "Fewest tasks (at least 3 in production: one per zone)."
  type        = number

  validation {
    condition     = var.min_count >= 1
    error_message = "min_count must be at least 1."
  }
}

variable "max_count" {
  description = "Most tasks autoscaling may run."
  type        = number
}

variable "cpu_target_percent" {
  description = "Target-tracking CPU utilisation of the service."
  type        = number
  default     = 70
}

variable "requests_per_target" {
  description = "Target-tracking ALB requests per task per minute."
  type        = number
}

variable "drain_timeout_seconds" {
  description = "The gateway's --drain-timeout-seconds; the container stop timeout is this plus 5 s."
  type        = number
  default     = 25

  validation {
    condition     = var.drain_timeout_seconds >= 1 && var.drain_timeout_seconds <= 115
    error_message = "drain_timeout_seconds must be 1 to 115 (Fargate's stop timeout is at most 120 s)."
  }
}

variable "trusted_proxy_hops" {
  description = "The gateway's --trusted-proxy-hops: CloudFront and the ALB each append to X-Forwarded-For, so 2."
  type        = number
  default     = 2
}

variable "database_host" {
  description = "Aurora writer endpoint."
  type        = string
}

variable "database_port" {
  description = "Aurora port."
  type        = number
  default     = 5432
}

variable "database_name" {
  description = "The gateway's database."
  type        = string
}

variable "database_username" {
  description = "The gateway's database role (the password comes from the database secret)."
  type        = string
}

variable "database_ca_file" {
  description = "Path in the image of the RDS CA bundle (--database-ca-file); the Dockerfile must ship it."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"
}

variable "database_pool_size_max" {
  description = "The gateway's --database-pool-size-max (read connections per core)."
  type        = number
  default     = 4
}

variable "database_secret_arn" {
  description = "Secret with the gateway's RDS JSON credentials (PROTEA_STORAGE_SECRET)."
  type        = string
}

variable "keys_secret_arn" {
  description = "Secret with the gateway keys document (PROTEA_KEYS_SECRET)."
  type        = string
}

variable "redis_url_secret_arn" {
  description = "Secret with the whole rediss:// URL, injected as PROTEA_REDIS_URL."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the secrets (the task and execution roles decrypt with it)."
  type        = string
}

variable "sessions_table_arn" {
  description = "ARN of the DynamoDB sessions table."
  type        = string
}

variable "sessions_table_name" {
  description = "Name of the DynamoDB sessions table (PROTEA_SESSIONS_TABLE)."
  type        = string
}

variable "data_kms_key_arn" {
  description = "KMS key of the sessions table."
  type        = string
}

variable "gateway_log_group_name" {
  description = "Log group of the gateway container (JSON logs and EMF metric lines)."
  type        = string
}

variable "adot_log_group_name" {
  description = "Log group of the ADOT collector sidecar."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key of the log groups and of ECS Exec session logs."
  type        = string
}

variable "extra_environment" {
  description = "More PROTEA_* environment variables (name => value); never secrets."
  type        = map(string)
  default     = {}
}
