# The way in: CloudFront (TLS 1.2+, WAF with AWS managed rule groups and a per-IP rate
# rule) in front of an internet-facing ALB that admits only CloudFront's origin-facing
# addresses and only requests carrying the secret origin header CloudFront adds. Only
# `/v1/*`, `/livez` and `/readyz` reach the gateway; everything else, `/metrics` above
# all, answers 404 at the edge and again at the ALB. ALB and CloudFront access logs and
# WAF logs are kept. It must never forward `/metrics` or let a client reach the ALB
# without passing CloudFront.

data "aws_caller_identity" "current" {}
data "aws_elb_service_account" "current" {}

data "aws_ec2_managed_prefix_list" "cloudfront_origin_facing" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

data "aws_cloudfront_cache_policy" "caching_disabled" {
  name = "Managed-CachingDisabled"
}

data "aws_cloudfront_origin_request_policy" "all_viewer_except_host" {
  name = "Managed-AllViewerExceptHostHeader"
}

data "aws_cloudfront_response_headers_policy" "security_headers" {
  name = "Managed-SecurityHeadersPolicy"
}

locals {
  origin_header       = "X-Protea-Origin-Verify"
  forwarded_paths     = ["/v1/*", "/livez", "/readyz"]
  edge_logs_bucket    = "${var.name}-edge-logs-${data.aws_caller_identity.current.account_id}"
  allowed_methods     = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
  cached_methods      = ["GET", "HEAD"]
  cloudfront_origin   = "alb"
  waf_metric_prefix   = replace(var.name, "-", "")
  managed_rule_groups = ["AWSManagedRulesCommonRuleSet", "AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesSQLiRuleSet"]
}

# The value CloudFront sends and the ALB requires: proof that a request came through
# CloudFront (and so through WAF). Rotate by tainting it (docs/runbooks.md).
resource "random_password" "origin_verify" {
  length  = 48
  special = false
}

# --- Logs -------------------------------------------------------------------------------

resource "aws_s3_bucket" "edge_logs" {
  #checkov:skip=CKV_AWS_145:ALB access log delivery supports only SSE-S3 (AES256) on the target bucket.
  #checkov:skip=CKV_AWS_144:Copies stay in af-south-1 (POPIA data residency); versioning protects the logs.
  #checkov:skip=CKV2_AWS_62:Nothing consumes edge-log object events; the logs are queried in bulk (Athena) when needed.
  bucket              = local.edge_logs_bucket
  object_lock_enabled = true
}

resource "aws_s3_bucket_public_access_block" "edge_logs" {
  bucket = aws_s3_bucket.edge_logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# CloudFront standard logging writes with an ACL grant, so the bucket must accept ACLs
# from its own account (BucketOwnerPreferred); public ACLs stay blocked above.
resource "aws_s3_bucket_ownership_controls" "edge_logs" {
  #checkov:skip=CKV2_AWS_65:CloudFront standard logging delivers through an ACL grant and needs ACLs enabled on its bucket; public ACLs are blocked by the public access block.
  bucket = aws_s3_bucket.edge_logs.id

  rule {
    object_ownership = "BucketOwnerPreferred"
  }
}

resource "aws_s3_bucket_versioning" "edge_logs" {
  bucket = aws_s3_bucket.edge_logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "edge_logs" {
  bucket = aws_s3_bucket.edge_logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_logging" "edge_logs" {
  bucket        = aws_s3_bucket.edge_logs.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${local.edge_logs_bucket}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "edge_logs" {
  bucket = aws_s3_bucket.edge_logs.id

  rule {
    id     = "expire"
    status = "Enabled"

    filter {}

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = var.log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.edge_logs]
}

resource "aws_s3_bucket_policy" "edge_logs" {
  bucket = aws_s3_bucket.edge_logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.edge_logs.arn, "${aws_s3_bucket.edge_logs.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "AlbAccessLogDelivery"
        Effect    = "Allow"
        Principal = { AWS = data.aws_elb_service_account.current.arn }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.edge_logs.arn}/alb/AWSLogs/${data.aws_caller_identity.current.account_id}/*"
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.edge_logs]
}

# --- ALB --------------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "ALB: HTTPS from CloudFront origin-facing addresses only; to the tasks only"
  vpc_id      = var.vpc_id

  ingress {
    description     = "HTTPS from CloudFront origin-facing servers"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    prefix_list_ids = [data.aws_ec2_managed_prefix_list.cloudfront_origin_facing.id]
  }

  egress {
    description = "To the gateway tasks inside the VPC"
    from_port   = var.container_port
    to_port     = var.container_port
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr_block]
  }

  tags = { Name = "${var.name}-alb" }
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_150:Deletion protection is var.deletion_protection: true in staging and prod (envs/*/settings.tf); only dev sets false, so that it can be torn down.
  #checkov:skip=CKV2_AWS_28:The WAF web ACL is attached to the CloudFront distribution in front; the ALB admits only CloudFront origin-facing addresses carrying the secret origin header, so every request has passed that WAF.
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  desync_mitigation_mode     = "strictest"
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 60

  access_logs {
    bucket  = aws_s3_bucket.edge_logs.id
    prefix  = "alb"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.edge_logs]
}

resource "aws_lb_target_group" "gateway" {
  #checkov:skip=CKV_AWS_378:ALB to task traffic stays inside the VPC's private-app subnets, restricted by security groups; clients' TLS ends at CloudFront and again at the ALB. Task-level TLS would need a per-task certificate the gateway cannot rotate without restart.
  name                 = "${var.name}-gateway"
  port                 = var.container_port
  protocol             = "HTTP"
  protocol_version     = "HTTP1"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = var.deregistration_delay_seconds

  health_check {
    path                = "/readyz"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.alb_certificate_arn

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      message_body = "{\"error\":\"not_found\"}"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "gateway" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }

  condition {
    path_pattern {
      values = local.forwarded_paths
    }
  }

  condition {
    http_header {
      http_header_name = local.origin_header
      values           = [random_password.origin_verify.result]
    }
  }
}

# --- WAF (us-east-1, CloudFront scope) -------------------------------------------------

resource "aws_kms_key" "waf_logs" {
  provider = aws.us_east_1

  description             = "${var.name}: WAF log group in us-east-1"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountIamPolicies"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.us-east-1.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:aws:logs:us-east-1:${data.aws_caller_identity.current.account_id}:*" }
        }
      },
    ]
  })
}

resource "aws_cloudwatch_log_group" "waf" {
  provider = aws.us_east_1

  # WAF requires the aws-waf-logs- prefix.
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.waf_logs.arn
}

resource "aws_wafv2_web_acl" "this" {
  provider = aws.us_east_1

  name        = var.name
  description = "Protea API edge: AWS managed rule groups and a per-IP rate limit"
  scope       = "CLOUDFRONT"

  default_action {
    allow {}
  }

  dynamic "rule" {
    for_each = local.managed_rule_groups
    content {
      name     = rule.value
      priority = rule.key

      override_action {
        none {}
      }

      statement {
        managed_rule_group_statement {
          vendor_name = "AWS"
          name        = rule.value
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${local.waf_metric_prefix}${rule.value}"
        sampled_requests_enabled   = true
      }
    }
  }

  # Known bad inputs, Log4j (CVE-2021-44228) patterns among them.
  rule {
    name     = "AWSManagedRulesKnownBadInputsRuleSet"
    priority = 10

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.waf_metric_prefix}KnownBadInputs"
      sampled_requests_enabled   = true
    }
  }

  # Anonymisers (Tor, open proxies) are blocked; hosting-provider addresses only counted,
  # since payment networks often connect from their own cloud accounts.
  rule {
    name     = "AWSManagedRulesAnonymousIpList"
    priority = 11

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"

        rule_action_override {
          name = "HostingProviderIPList"

          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.waf_metric_prefix}AnonymousIp"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-per-ip"
    priority = 100

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.rate_limit_per_5_minutes
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.waf_metric_prefix}RatePerIp"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = local.waf_metric_prefix
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  provider = aws.us_east_1

  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  # Signed requests carry credentials in these headers: never log them.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }

  redacted_fields {
    single_header {
      name = lower(local.origin_header)
    }
  }
}

# --- CloudFront ------------------------------------------------------------------------

# Everything outside the forwarded paths ends here, without reaching the origin.
resource "aws_cloudfront_function" "not_found" {
  name    = "${var.name}-not-found"
  runtime = "cloudfront-js-2.0"
  comment = "404 for any path the gateway does not serve publicly"
  publish = true
  code    = <<-JS
    function handler(event) {
      return {
        statusCode: 404,
        statusDescription: 'Not Found',
        headers: { 'content-type': { value: 'application/json' } },
        body: { encoding: 'text', data: '{"error":"not_found"}' }
      };
    }
  JS
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_310:The only origin is the regional ALB, which spans three zones; there is no second origin to fail over to (a second region is outside POPIA residency and the design).
  #checkov:skip=CKV_AWS_305:An API distribution with no root object: "/" answers 404 by design.
  #checkov:skip=CKV2_AWS_46:The origin is the ALB (a custom origin), not an S3 bucket; origin access control applies to S3 origins only.
  #checkov:skip=CKV_AWS_374:Payment networks connect from many countries; access is controlled by request signatures and mTLS, not geography.
  enabled         = true
  is_ipv6_enabled = true
  comment         = "${var.name} API"
  aliases         = [var.api_domain_name]
  price_class     = var.price_class
  http_version    = "http2and3"
  web_acl_id      = aws_wafv2_web_acl.this.arn

  origin {
    origin_id   = local.cloudfront_origin
    domain_name = var.origin_domain_name

    custom_origin_config {
      http_port                = 80
      https_port               = 443
      origin_protocol_policy   = "https-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = 30
      origin_keepalive_timeout = 60
    }

    custom_header {
      name  = local.origin_header
      value = random_password.origin_verify.result
    }
  }

  dynamic "ordered_cache_behavior" {
    for_each = local.forwarded_paths
    content {
      path_pattern               = ordered_cache_behavior.value
      target_origin_id           = local.cloudfront_origin
      viewer_protocol_policy     = "https-only"
      allowed_methods            = local.allowed_methods
      cached_methods             = local.cached_methods
      compress                   = false
      cache_policy_id            = data.aws_cloudfront_cache_policy.caching_disabled.id
      origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
      response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security_headers.id
    }
  }

  default_cache_behavior {
    target_origin_id           = local.cloudfront_origin
    viewer_protocol_policy     = "https-only"
    allowed_methods            = local.allowed_methods
    cached_methods             = local.cached_methods
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_disabled.id
    response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security_headers.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.not_found.arn
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.cloudfront_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  logging_config {
    bucket          = aws_s3_bucket.edge_logs.bucket_domain_name
    prefix          = "cloudfront/"
    include_cookies = false
  }

  depends_on = [aws_s3_bucket_ownership_controls.edge_logs]
}

# --- DNS -------------------------------------------------------------------------------

resource "aws_route53_record" "api" {
  for_each = toset(["A", "AAAA"])

  zone_id = var.route53_zone_id
  name    = var.api_domain_name
  type    = each.value

  alias {
    name                   = aws_cloudfront_distribution.this.domain_name
    zone_id                = aws_cloudfront_distribution.this.hosted_zone_id
    evaluate_target_health = false
  }
}

resource "aws_route53_record" "origin" {
  zone_id = var.route53_zone_id
  name    = var.origin_domain_name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
