variable "name" {
  description = "Prefix of every resource name, e.g. protea-prod."
  type        = string
}

variable "archive_kms_key_arn" {
  description = "Customer KMS key of the governance bucket (and of AWS Config's deliveries)."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "Customer KMS key of the CloudTrail log files and of its CloudWatch log group."
  type        = string
}

variable "access_log_bucket" {
  description = "Bucket that receives the governance bucket's server access logs."
  type        = string
}

variable "trail_log_retention_days" {
  description = "Days the trail stays in CloudWatch Logs (the S3 copy follows the bucket lifecycle)."
  type        = number
  default     = 365
}

variable "glacier_after_days" {
  description = "Days after which trail and Config files move to Glacier."
  type        = number
  default     = 90
}

variable "expire_after_days" {
  description = "Days after which trail and Config files are deleted."
  type        = number
  default     = 2555
}
