variable "table_name" {
  description = "Name of the DynamoDB table of operator sessions (the gateway's --sessions-table)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3 to 255 of A-Z a-z 0-9 _ . - (the gateway checks the same)."
  }
}

variable "kms_key_arn" {
  description = "Customer KMS key that encrypts the table."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the table (true in production)."
  type        = bool
  default     = true
}
