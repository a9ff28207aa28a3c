# Secrets Manager secrets of one environment: the gateway's database credentials (RDS
# JSON, rotated by the AWS-provided single-user rotation lambda from the Serverless
# Application Repository), the ElastiCache auth token, and the gateway's keys document
# (`--keys-secret`, whose value never passes through Terraform). Every secret is
# encrypted with a customer key. It must never write a secret value to an output that is
# not marked sensitive, nor put the keys document in Terraform state.

data "aws_region" "current" {}
data "aws_partition" "current" {}

resource "random_password" "database" {
  length  = 40
  special = false
}

resource "random_password" "redis_auth_token" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "database" {
  name                    = "${var.name}/database"
  description             = "Protea gateway's Aurora credentials (RDS JSON); read by the gateway through PROTEA_STORAGE_SECRET, rotated automatically."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_days
}

# The first version only: rotation owns the value afterwards. The role itself is created
# in the database by the bootstrap step in terraform/README.md.
resource "aws_secretsmanager_secret_version" "database" {
  secret_id = aws_secretsmanager_secret.database.id
  secret_string = jsonencode({
    engine   = "postgres"
    host     = var.database_host
    port     = var.database_port
    dbname   = var.database_name
    username = var.database_username
    password = random_password.database.result
  })

  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_security_group" "rotation" {
  #checkov:skip=CKV2_AWS_5:Attached to the rotation lambda through the serverless application stack's vpcSecurityGroupIds parameter, which checkov cannot follow.
  name        = "${var.name}-secret-rotation"
  description = "Database secret rotation lambda: reaches Aurora and the Secrets Manager endpoint only"
  vpc_id      = var.vpc_id

  egress {
    description = "Aurora and the Secrets Manager VPC endpoint, inside the VPC"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr_block]
  }

  tags = { Name = "${var.name}-secret-rotation" }
}

# AWS's own rotation function for a single PostgreSQL user, deployed from the Serverless
# Application Repository into the private-app subnets.
resource "aws_serverlessapplicationrepository_cloudformation_stack" "rotation" {
  name             = "${var.name}-database-rotation"
  application_id   = "arn:${data.aws_partition.current.partition}:serverlessrepo:us-east-1:297356227824:applications/SecretsManagerRDSPostgreSQLRotationSingleUser"
  semantic_version = var.rotation_application_version
  capabilities     = ["CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"]

  parameters = {
    endpoint            = "https://secretsmanager.${data.aws_region.current.name}.amazonaws.com"
    functionName        = "${var.name}-database-rotation"
    vpcSubnetIds        = join(",", var.lambda_subnet_ids)
    vpcSecurityGroupIds = aws_security_group.rotation.id
    kmsKeyArn           = var.kms_key_arn
  }
}

resource "aws_secretsmanager_secret_rotation" "database" {
  secret_id           = aws_secretsmanager_secret.database.id
  rotation_lambda_arn = aws_serverlessapplicationrepository_cloudformation_stack.rotation.outputs["RotationLambdaARN"]

  rotation_rules {
    automatically_after_days = var.database_rotation_days
  }

  depends_on = [aws_secretsmanager_secret_version.database]
}

resource "aws_secretsmanager_secret" "redis_auth_token" {
  #checkov:skip=CKV2_AWS_57:An ElastiCache auth token rotates in two steps (ROTATE then SET on the replication group, with the gateways' URL secret updated between them); docs/runbooks.md describes it. No AWS-provided lambda does this.
  name                    = "${var.name}/redis-auth-token"
  description             = "ElastiCache Redis AUTH token of the Protea replication group."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "redis_auth_token" {
  secret_id     = aws_secretsmanager_secret.redis_auth_token.id
  secret_string = random_password.redis_auth_token.result
}

# Created empty: the value is `gateway keys-generate` output, put by an operator
# (terraform/README.md), so the key-encryption key never enters Terraform state.
resource "aws_secretsmanager_secret" "gateway_keys" {
  #checkov:skip=CKV2_AWS_57:The keys document rotates in two steps that every gateway must observe in turn (add version, wait, switch current, wait; docs/configuration.md "Keys document"); a rotation lambda cannot wait on the gateways.
  name                    = "${var.name}/gateway-keys"
  description             = "Protea gateway keys document (KEK ring and operator-token signing keys); read through PROTEA_KEYS_SECRET."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_days
}
