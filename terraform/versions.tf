terraform {
  # terraform_data (replace_triggered_by of the migration Job) needs 1.4; validation blocks as used need 1.5.
  required_version = ">= 1.5.0"

  required_providers {
    kubernetes = {
      source = "hashicorp/kubernetes"
      # kubernetes_manifest with wait { rollout / condition } blocks.
      version = ">= 2.23.0, < 3.0.0"
    }
  }
}
