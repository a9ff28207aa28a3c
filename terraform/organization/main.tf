# The AWS Organizations layout Protea lives in: organizational units Infrastructure,
# Security, Sandbox and Workloads (with Development, Staging and Production under it),
# and service control policies that hold every account to the platform's guardrails:
# only the home region (and us-east-1 for global services), encryption on S3 writes and
# on new EBS volumes and RDS storage, no leaving the organization, no turning off
# CloudTrail, AWS Config or GuardDuty. It must never grant anything: SCPs only limit.

data "aws_organizations_organization" "this" {}

locals {
  root_id = data.aws_organizations_organization.this.roots[0].id

  # Principals the guardrails do not bind, so that the guardrails stay maintainable.
  exempt_principals = [for role in var.break_glass_role_names : "arn:aws:iam::*:role/${role}"]

  # Services whose control plane is global (served from us-east-1) and so must not be
  # denied by the region guardrail.
  global_services = [
    "a4b:*", "access-analyzer:*", "account:*", "acm:*", "aws-marketplace:*", "aws-portal:*",
    "budgets:*", "ce:*", "chime:*", "cloudfront:*", "config:*", "cur:*", "directconnect:*",
    "ec2:DescribeRegions", "ec2:DescribeTransitGateways", "ec2:DescribeVpnGateways",
    "fms:*", "globalaccelerator:*", "health:*", "iam:*", "importexport:*", "kms:*",
    "mobileanalytics:*", "networkmanager:*", "organizations:*", "pricing:*",
    "route53:*", "route53domains:*", "route53-recovery-cluster:*",
    "route53-recovery-control-config:*", "route53-recovery-readiness:*", "s3:GetAccountPublic*",
    "s3:ListAllMyBuckets", "s3:ListMultiRegionAccessPoints", "s3:PutAccountPublic*",
    "shield:*", "sts:*", "support:*", "trustedadvisor:*", "waf:*", "waf-regional:*",
    "wafv2:*", "wellarchitected:*",
  ]
}

# --- Organizational units ---------------------------------------------------------------

resource "aws_organizations_organizational_unit" "top" {
  for_each = toset(["Infrastructure", "Security", "Sandbox", "Workloads"])

  name      = each.value
  parent_id = local.root_id
}

resource "aws_organizations_organizational_unit" "workloads" {
  for_each = toset(["Development", "Staging", "Production"])

  name      = each.value
  parent_id = aws_organizations_organizational_unit.top["Workloads"].id
}

# --- Service control policies -----------------------------------------------------------

resource "aws_organizations_policy" "region_guardrail" {
  name        = "protea-deny-other-regions"
  description = "Deny every regional action outside the allowed regions (global services exempt)."
  type        = "SERVICE_CONTROL_POLICY"

  content = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyOutsideAllowedRegions"
      Effect    = "Deny"
      NotAction = local.global_services
      Resource  = "*"
      Condition = {
        StringNotEquals = { "aws:RequestedRegion" = var.allowed_regions }
        ArnNotLike      = { "aws:PrincipalARN" = local.exempt_principals }
      }
    }]
  })
}

resource "aws_organizations_policy" "encryption_guardrail" {
  name        = "protea-require-encryption"
  description = "Deny unencrypted S3 writes, unencrypted EBS volumes and unencrypted RDS storage."
  type        = "SERVICE_CONTROL_POLICY"

  content = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Every put by an IAM principal must ask for KMS encryption explicitly (AWS
        # services delivering logs act as service principals, which SCPs do not bind).
        Sid       = "DenyS3PutWithoutKmsHeader"
        Effect    = "Deny"
        Action    = "s3:PutObject"
        Resource  = "*"
        Condition = { Null = { "s3:x-amz-server-side-encryption" = "true" } }
      },
      {
        Sid      = "DenyS3PutWithoutKms"
        Effect   = "Deny"
        Action   = "s3:PutObject"
        Resource = "*"
        Condition = {
          StringNotEquals = { "s3:x-amz-server-side-encryption" = ["aws:kms", "aws:kms:dsse"] }
          Null            = { "s3:x-amz-server-side-encryption" = "false" }
        }
      },
      {
        Sid       = "DenyUnencryptedEbsVolumes"
        Effect    = "Deny"
        Action    = "ec2:CreateVolume"
        Resource  = "*"
        Condition = { Bool = { "ec2:Encrypted" = "false" } }
      },
      {
        Sid       = "DenyDisablingEbsDefaultEncryption"
        Effect    = "Deny"
        Action    = "ec2:DisableEbsEncryptionByDefault"
        Resource  = "*"
        Condition = { ArnNotLike = { "aws:PrincipalARN" = local.exempt_principals } }
      },
      {
        Sid       = "DenyUnencryptedRdsInstances"
        Effect    = "Deny"
        Action    = "rds:CreateDBInstance"
        Resource  = "*"
        Condition = { Bool = { "rds:StorageEncrypted" = "false" } }
      },
      {
        Sid       = "DenyUnencryptedRdsClusters"
        Effect    = "Deny"
        Action    = "rds:CreateDBCluster"
        Resource  = "*"
        Condition = { Bool = { "rds:StorageEncrypted" = "false" } }
      },
    ]
  })
}

resource "aws_organizations_policy" "protect_governance" {
  name        = "protea-protect-governance"
  description = "Deny leaving the organization and disabling CloudTrail, AWS Config or GuardDuty."
  type        = "SERVICE_CONTROL_POLICY"

  content = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "DenyLeavingOrganization"
        Effect   = "Deny"
        Action   = "organizations:LeaveOrganization"
        Resource = "*"
      },
      {
        Sid    = "DenyDisablingCloudTrail"
        Effect = "Deny"
        Action = [
          "cloudtrail:StopLogging",
          "cloudtrail:DeleteTrail",
          "cloudtrail:UpdateTrail",
          "cloudtrail:PutEventSelectors",
        ]
        Resource  = "*"
        Condition = { ArnNotLike = { "aws:PrincipalARN" = local.exempt_principals } }
      },
      {
        Sid    = "DenyDisablingConfig"
        Effect = "Deny"
        Action = [
          "config:StopConfigurationRecorder",
          "config:DeleteConfigurationRecorder",
          "config:DeleteDeliveryChannel",
          "config:DeleteRetentionConfiguration",
        ]
        Resource  = "*"
        Condition = { ArnNotLike = { "aws:PrincipalARN" = local.exempt_principals } }
      },
      {
        Sid    = "DenyDisablingGuardDuty"
        Effect = "Deny"
        Action = [
          "guardduty:DeleteDetector",
          "guardduty:DisassociateFromMasterAccount",
          "guardduty:DisassociateFromAdministratorAccount",
          "guardduty:StopMonitoringMembers",
          "guardduty:UpdateDetector",
          "guardduty:DeleteMembers",
          "guardduty:DisassociateMembers",
        ]
        Resource  = "*"
        Condition = { ArnNotLike = { "aws:PrincipalARN" = local.exempt_principals } }
      },
    ]
  })
}

# The governance and encryption guardrails bind the root, so every account, present and
# future, Sandbox included. The region guardrail binds the OUs that hold Protea
# infrastructure or data (Infrastructure, Security, Workloads and so its children);
# Sandbox holds no Protea data and may try services in other regions.
locals {
  all_ous = merge(
    { for name, ou in aws_organizations_organizational_unit.top : name => ou.id },
    { for name, ou in aws_organizations_organizational_unit.workloads : name => ou.id },
  )

  attachments = merge(
    { "root/protect_governance" = { policy = aws_organizations_policy.protect_governance.id, target = local.root_id } },
    { "root/encryption" = { policy = aws_organizations_policy.encryption_guardrail.id, target = local.root_id } },
    { for name in ["Infrastructure", "Security", "Workloads"] : "${name}/region" => {
      policy = aws_organizations_policy.region_guardrail.id
      target = local.all_ous[name]
    } },
  )
}

resource "aws_organizations_policy_attachment" "this" {
  for_each = local.attachments

  policy_id = each.value.policy
  target_id = each.value.target
}
