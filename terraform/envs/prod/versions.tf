terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 6.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6.0, < 4.0.0"
    }
  }

  # Partial configuration: the bucket (and its KMS key) are per account, given at init:
  #   terraform init -backend-config=bucket=BUCKET -backend-config=kms_key_id=alias/protea-terraform-state
  # See terraform/README.md for the bootstrap.
  backend "s3" {
    key            = "prod/terraform.tfstate"
    region         = "af-south-1"
    encrypt        = true
    dynamodb_table = "protea-terraform-locks"
  }
}

provider "aws" {
  region = local.region

  default_tags {
    tags = local.tags
  }
}

# CloudFront's WAF web ACL, its log group and its key live in us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = local.tags
  }
}
