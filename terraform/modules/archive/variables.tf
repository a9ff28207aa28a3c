variable "name" {
  description = "Prefix of the bucket names, e.g. protea-prod; the account id is appended for global uniqueness."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer KMS key of the archive and exports buckets."
  type        = string
}

variable "audit_retention_days" {
  description = "Object Lock retention of audit archive objects in COMPLIANCE mode (nobody, root included, can delete them earlier), in days."
  type        = number
  default     = 2555

  validation {
    condition     = var.audit_retention_days >= 1
    error_message = "audit_retention_days must be at least 1."
  }
}

variable "audit_glacier_after_days" {
  description = "Days after which audit archive objects move to Glacier Flexible Retrieval."
  type        = number
  default     = 90
}

variable "audit_deep_archive_after_days" {
  description = "Days after which audit archive objects move to Glacier Deep Archive."
  type        = number
  default     = 365
}

variable "exports_expire_after_days" {
  description = "Days after which data-subject and report exports are deleted."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept."
  type        = number
  default     = 365
}
