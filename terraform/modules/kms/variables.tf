variable "name" {
  description = "Prefix of every alias, e.g. protea-prod (aliases become alias/protea-prod-data, ...)."
  type        = string
}

variable "deletion_window_days" {
  description = "Waiting period before a scheduled key deletion takes effect, in days (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_days >= 7 && var.deletion_window_days <= 30
    error_message = "deletion_window_days must be between 7 and 30."
  }
}

variable "key_administrator_arns" {
  description = "IAM principals (roles) allowed to administer the keys (not to use them). The account root keeps access so that IAM policies apply."
  type        = list(string)
  default     = []
}
