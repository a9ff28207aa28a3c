variable "name" {
  description = "Prefix of every resource name, e.g. protea-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the replication group."
  type        = string
}

variable "subnet_ids" {
  description = "Private-data subnets, one per zone."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups admitted on the Redis port (the gateway tasks), by a name known before apply (for_each keys must be)."
  type        = map(string)
}

variable "node_type" {
  description = "ElastiCache node type, e.g. cache.t4g.small or cache.r7g.large."
  type        = string
}

variable "replicas_per_shard" {
  description = "Replicas of the primary, each in another zone (at least 1 for automatic failover)."
  type        = number
  default     = 2

  validation {
    condition     = var.replicas_per_shard >= 1 && var.replicas_per_shard <= 5
    error_message = "replicas_per_shard must be 1 to 5 (automatic failover needs a replica)."
  }
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "auth_token" {
  description = "The AUTH token clients present (from the secrets module, kept in Secrets Manager)."
  type        = string
  sensitive   = true
}

variable "kms_key_arn" {
  description = "Customer KMS key for data at rest and the Redis URL secret."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "Customer KMS key of Secrets Manager secrets (the gateway's Redis URL)."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "Customer KMS key of the slow-log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the slow-log group, in days."
  type        = number
  default     = 365
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots kept (1 to 35)."
  type        = number
  default     = 7

  validation {
    condition     = var.snapshot_retention_days >= 1 && var.snapshot_retention_days <= 35
    error_message = "snapshot_retention_days must be 1 to 35."
  }
}
