variable "name" {
  description = "Prefix of every secret name, e.g. protea-prod (secrets become protea-prod/database, ...)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer KMS key that encrypts every secret."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the rotation lambda."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range: the rotation lambda reaches the database and the Secrets Manager endpoint inside it."
  type        = string
}

variable "lambda_subnet_ids" {
  description = "Private subnets (private-app) of the database rotation lambda."
  type        = list(string)
}

variable "database_host" {
  description = "Aurora cluster writer endpoint, written into the database secret (the rotation lambda connects to it)."
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
  description = "The gateway's database role (not the master user)."
  type        = string
}

variable "database_rotation_days" {
  description = "Days between automatic rotations of the gateway's database password."
  type        = number
  default     = 30

  validation {
    condition     = var.database_rotation_days >= 1 && var.database_rotation_days <= 365
    error_message = "database_rotation_days must be between 1 and 365."
  }
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once; 7 to 30 otherwise)."
  type        = number
  default     = 30
}

variable "rotation_application_version" {
  description = "Version of AWS's SecretsManagerRDSPostgreSQLRotationSingleUser application in the Serverless Application Repository (check the newest with `aws serverlessrepo list-application-versions`)."
  type        = string
  default     = "1.1.367"
}
