variable "name" {
  description = "Prefix of every resource name, e.g. protea-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the load balancer."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range (the ALB reaches the tasks inside it)."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets, one per zone, for the ALB."
  type        = list(string)
}

variable "api_domain_name" {
  description = "The name clients use, e.g. api.protea.example.com (served by CloudFront)."
  type        = string
}

variable "origin_domain_name" {
  description = "The ALB's own name, e.g. origin.protea.example.com (CloudFront connects to it over TLS)."
  type        = string
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone holding both names."
  type        = string
}

variable "cloudfront_certificate_arn" {
  description = "ACM certificate in us-east-1 covering api_domain_name."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:us-east-1:", var.cloudfront_certificate_arn))
    error_message = "cloudfront_certificate_arn must be an ACM certificate in us-east-1 (CloudFront requires it)."
  }
}

variable "alb_certificate_arn" {
  description = "ACM certificate in the ALB's region covering origin_domain_name."
  type        = string
}

variable "container_port" {
  description = "Port the gateway listens on in its task."
  type        = number
  default     = 8080
}

variable "deregistration_delay_seconds" {
  description = "Time the ALB keeps sending in-flight requests to a draining target; must not exceed the gateway's --drain-timeout-seconds (25)."
  type        = number
  default     = 20

  validation {
    condition     = var.deregistration_delay_seconds >= 0 && var.deregistration_delay_seconds <= 25
    error_message = "deregistration_delay_seconds must be 0 to 25 (at most the gateway's drain timeout)."
  }
}

variable "rate_limit_per_5_minutes" {
  description = "Requests one client IP may send in any 5 minutes before WAF blocks it (the gateway's own per-tenant limit sits behind it)."
  type        = number
  default     = 300000
}

variable "deletion_protection" {
  description = "Refuse to delete the ALB (true in production)."
  type        = bool
  default     = true
}

variable "access_log_bucket" {
  description = "Bucket that receives the edge-logs bucket's own server access logs."
  type        = string
}

variable "log_retention_days" {
  description = "Days ALB, CloudFront and WAF logs are kept."
  type        = number
  default     = 365
}

variable "price_class" {
  description = "CloudFront price class; PriceClass_All includes the Johannesburg and Cape Town edges."
  type        = string
  default     = "PriceClass_All"
}
