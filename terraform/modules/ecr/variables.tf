variable "repository_name" {
  description = "Name of the gateway image repository, e.g. protea/gateway."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer KMS key that encrypts the images."
  type        = string
}

variable "untagged_expire_days" {
  description = "Days after which untagged images are removed."
  type        = number
  default     = 7
}

variable "tagged_images_kept" {
  description = "Most tagged images kept (older ones are removed; keep enough to roll back)."
  type        = number
  default     = 50

  validation {
    condition     = var.tagged_images_kept >= 5
    error_message = "tagged_images_kept must be at least 5, so that a rollback target remains."
  }
}
