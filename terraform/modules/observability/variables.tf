variable "name" {
  description = "Prefix of every resource name, e.g. protea-prod."
  type        = string
}

variable "service_name" {
  description = "The gateway's --service-name: the Service dimension of its EMF metrics (namespace Protea)."
  type        = string
  default     = "protea"
}

variable "logs_kms_key_arn" {
  description = "Customer KMS key of the log groups and the SNS topic."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the gateway and collector log groups, in days."
  type        = number
  default     = 365
}

variable "alarm_emails" {
  description = "Addresses subscribed to the alarm topic (each confirms by e-mail)."
  type        = list(string)
  default     = []
}

variable "routes" {
  description = "Route templates shown per route on the dashboard (the Route dimension)."
  type        = list(string)
  default     = ["/v1/transfers", "/v1/accounts", "/v1/accounts/{id}"]
}

variable "latency_p99_slo_ms" {
  description = "The p99 request latency objective, in milliseconds (dashboards/README.md's SLO); the alarm fires when p99 exceeds it."
  type        = number
  default     = 250
}

variable "error_rate_slo_percent" {
  description = "Most 5xx responses as a percentage of requests before the alarm fires."
  type        = number
  default     = 1
}

variable "alb_arn_suffix" {
  description = "The ALB's ARN suffix (LoadBalancer dimension)."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "The target group's ARN suffix (TargetGroup dimension)."
  type        = string
}

variable "ecs_cluster_name" {
  description = "The ECS cluster (ClusterName dimension)."
  type        = string
}

variable "ecs_service_name" {
  description = "The ECS service (ServiceName dimension)."
  type        = string
}

variable "aurora_cluster_identifier" {
  description = "The Aurora cluster (DBClusterIdentifier dimension)."
  type        = string
}

variable "aurora_freeable_memory_bytes_min" {
  description = "Alarm when an Aurora instance's freeable memory falls under this many bytes."
  type        = number
  default     = 536870912
}

variable "redis_member_clusters" {
  description = "The Redis nodes (CacheClusterId dimension)."
  type        = list(string)
}
