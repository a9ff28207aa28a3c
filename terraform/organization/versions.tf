terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 6.0.0"
    }
  }

  # Run once from the management account; the state bucket is made by the bootstrap
  # step in terraform/README.md.
  backend "s3" {
    key            = "organization/terraform.tfstate"
    region         = "af-south-1"
    encrypt        = true
    dynamodb_table = "protea-terraform-locks"
  }
}

provider "aws" {
  region = var.home_region

  default_tags {
    tags = {
      Project   = "protea"
      Stack     = "organization"
      ManagedBy = "terraform"
    }
  }
}
