output "organizational_unit_ids" {
  description = "Ids of every organizational unit, by name (Workloads' children included)."
  value       = local.all_ous
}

output "policy_ids" {
  description = "Ids of the service control policies."
  value = {
    region_guardrail     = aws_organizations_policy.region_guardrail.id
    encryption_guardrail = aws_organizations_policy.encryption_guardrail.id
    protect_governance   = aws_organizations_policy.protect_governance.id
  }
}
