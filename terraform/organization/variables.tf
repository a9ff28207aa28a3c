variable "home_region" {
  description = "The region Protea's workloads and data live in (POPIA residency)."
  type        = string
  default     = "af-south-1"
}

variable "allowed_regions" {
  description = "Regions any account may use: the home region, plus us-east-1 for global services' control planes (CloudFront, IAM, WAF for CloudFront, ACM for CloudFront, Route 53, Organizations)."
  type        = list(string)
  default     = ["af-south-1", "us-east-1"]

  validation {
    condition     = contains(var.allowed_regions, "af-south-1") && contains(var.allowed_regions, "us-east-1")
    error_message = "allowed_regions must include af-south-1 (home) and us-east-1 (global services)."
  }
}

variable "break_glass_role_names" {
  description = "IAM role names exempt from the guardrail SCPs (the organization's own administration role), so that guardrails can be maintained."
  type        = list(string)
  default     = ["OrganizationAccountAccessRole"]
}
