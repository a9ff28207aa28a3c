variable "name" {
  description = "The bucket's globally unique name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "name must be a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)."
  }
}

variable "kms_key_arn" {
  description = "Customer KMS key that encrypts every object (SSE-KMS with an S3 bucket key)."
  type        = string
}

variable "access_log_bucket" {
  description = "Name of the bucket that receives this bucket's server access logs."
  type        = string
}

variable "object_lock_retention_days" {
  description = "Default Object Lock retention in COMPLIANCE mode, in days; null for no default retention (Object Lock stays enabled, so legal holds remain possible)."
  type        = number
  default     = null
}

variable "glacier_after_days" {
  description = "Days after which current objects move to S3 Glacier Flexible Retrieval; null to keep them in S3 Standard."
  type        = number
  default     = null
}

variable "deep_archive_after_days" {
  description = "Days after which current objects move to S3 Glacier Deep Archive; null for never."
  type        = number
  default     = null
}

variable "expire_after_days" {
  description = "Days after which current objects expire; null for never. Must exceed any Object Lock retention."
  type        = number
  default     = null
}

variable "noncurrent_expire_after_days" {
  description = "Days after which non-current object versions are removed."
  type        = number
  default     = 90
}

variable "extra_policy_statements" {
  description = "Bucket policy statements added to the TLS-only statement (for example, service principals that deliver logs)."
  type        = any
  default     = []
}
