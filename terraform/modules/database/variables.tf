variable "name" {
  description = "Prefix of every resource name, e.g. protea-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private-data subnets, one per zone."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups admitted on 5432 (gateway tasks, the rotation lambda), by a name known before apply (for_each keys must be)."
  type        = map(string)
}

variable "engine_version" {
  description = "Aurora PostgreSQL engine version (15.x)."
  type        = string
  default     = "15.10"

  validation {
    condition     = startswith(var.engine_version, "15.")
    error_message = "engine_version must be an Aurora PostgreSQL 15.x version."
  }
}

variable "instance_class" {
  description = "Instance class of the writer and readers, e.g. db.t4g.medium or db.r7g.xlarge."
  type        = string
}

variable "instance_count" {
  description = "Instances in the cluster: one writer, the rest readers in other zones (at least 2 for a multi-AZ failover target)."
  type        = number
  default     = 2

  validation {
    condition     = var.instance_count >= 2 && var.instance_count <= 15
    error_message = "instance_count must be 2 to 15 (a writer and at least one reader in another zone)."
  }
}

variable "availability_zones" {
  description = "Zones to spread the instances over, in order."
  type        = list(string)
}

variable "database_name" {
  description = "The gateway's database."
  type        = string
  default     = "protea"
}

variable "master_username" {
  description = "Master user name (its password is managed and rotated by RDS in Secrets Manager)."
  type        = string
  default     = "protea_admin"
}

variable "kms_key_arn" {
  description = "Customer KMS key for storage and Performance Insights."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "Customer KMS key of the RDS-managed master user secret."
  type        = string
}

variable "backup_retention_days" {
  description = "Days of continuous backup (point-in-time recovery window), 1 to 35."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be 1 to 35."
  }
}

variable "performance_insights_retention_days" {
  description = "Performance Insights retention: 7 (free tier) or a multiple of 31 up to 731."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Refuse to delete the cluster (true in production)."
  type        = bool
  default     = true
}

variable "skip_final_snapshot" {
  description = "Delete without a final snapshot (dev only)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the exported PostgreSQL log group, in days."
  type        = number
  default     = 365
}

variable "logs_kms_key_arn" {
  description = "Customer KMS key of the exported log group."
  type        = string
}
