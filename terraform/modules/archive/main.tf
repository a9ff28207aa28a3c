# The S3 buckets that hold Protea's data at rest outside the database: the audit archive
# (exported hash-chained audit trail, Object Lock in COMPLIANCE mode, tiered to Glacier
# then Deep Archive), the exports bucket (data-subject access exports and Information
# Officer reports, short-lived), and the access-log bucket every other bucket logs to.
# It must never make a bucket public, accept plaintext transport, or let an audit object
# be deleted before its retention ends.

data "aws_caller_identity" "current" {}

locals {
  suffix = data.aws_caller_identity.current.account_id
}

# The sink of every bucket's server access logs. S3 log delivery writes here with SSE-S3
# (the logging service cannot use a customer KMS key on the target bucket).
resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_145:S3 server access log delivery supports only SSE-S3 on the target bucket.
  #checkov:skip=CKV_AWS_144:Copies stay in af-south-1 (POPIA data residency); versioning and Object Lock protect against deletion.
  #checkov:skip=CKV2_AWS_62:Nothing consumes access-log object events; they are read in bulk (Athena) when needed.
  bucket              = "${var.name}-access-logs-${local.suffix}"
  object_lock_enabled = true
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    id     = "expire"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.access_logs]
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.access_logs.arn, "${aws_s3_bucket.access_logs.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "S3ServerAccessLogDelivery"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.access_logs.arn}/s3/*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.suffix } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}

module "audit_archive" {
  source = "../bucket"

  name                       = "${var.name}-audit-archive-${local.suffix}"
  kms_key_arn                = var.kms_key_arn
  access_log_bucket          = aws_s3_bucket.access_logs.id
  object_lock_retention_days = var.audit_retention_days
  glacier_after_days         = var.audit_glacier_after_days
  deep_archive_after_days    = var.audit_deep_archive_after_days
}

module "exports" {
  source = "../bucket"

  name                         = "${var.name}-exports-${local.suffix}"
  kms_key_arn                  = var.kms_key_arn
  access_log_bucket            = aws_s3_bucket.access_logs.id
  expire_after_days            = var.exports_expire_after_days
  noncurrent_expire_after_days = 1
}
