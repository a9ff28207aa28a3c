variable "image_tag" {
  description = "Immutable tag of the gateway image in this environment's ECR repository (the release workflow sets it)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, immutable Docker tag (not \"latest\")."
  }
}

variable "api_domain_name" {
  description = "The name clients use (CloudFront), e.g. api.ENV.protea.example.com."
  type        = string
}

variable "origin_domain_name" {
  description = "The ALB's name that CloudFront connects to, e.g. origin.ENV.protea.example.com."
  type        = string
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone of both names."
  type        = string
}

variable "cloudfront_certificate_arn" {
  description = "ACM certificate in us-east-1 for api_domain_name."
  type        = string
}

variable "alb_certificate_arn" {
  description = "ACM certificate in af-south-1 for origin_domain_name."
  type        = string
}

variable "alarm_emails" {
  description = "Addresses that receive alarm notifications."
  type        = list(string)
  default     = []
}

variable "key_administrator_arns" {
  description = "IAM roles that administer (not use) the environment's KMS keys."
  type        = list(string)
  default     = []
}
