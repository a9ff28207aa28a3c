variable "name" {
  description = "Prefix of every resource name, e.g. protea-prod."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's IPv4 range; each of the three zones gets a /20 public, a /20 private-app and a /20 private-data subnet carved from it."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 16
    error_message = "cidr_block must be a valid IPv4 CIDR of /16 or larger."
  }
}

variable "availability_zones" {
  description = "Exactly three availability zones of the region, e.g. [\"af-south-1a\", \"af-south-1b\", \"af-south-1c\"]."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) == 3
    error_message = "availability_zones must list exactly three zones."
  }
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group, in days."
  type        = number
  default     = 365
}

variable "logs_kms_key_arn" {
  description = "Customer KMS key that encrypts the flow log group."
  type        = string
}
