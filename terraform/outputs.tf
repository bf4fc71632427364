output "namespace" {
  description = "Namespace of the gateway."
  value       = var.namespace
}

output "image" {
  description = "Image deployed for the API, the workers and the migration Job."
  value       = var.image
}

output "api_service" {
  description = "Name of the API's ClusterIP Service (port 80 -> 8000)."
  value       = local.apps["Service/llm-gateway-api"].metadata.name
}

output "api_url" {
  description = "In-cluster URL of the API (expose it with an Ingress or Gateway of your cluster)."
  value       = "http://${local.apps["Service/llm-gateway-api"].metadata.name}.${var.namespace}.svc.cluster.local"
}

output "worker_deployment" {
  description = "Name of the worker Deployment the HorizontalPodAutoscaler scales."
  value       = local.apps["Deployment/llm-gateway-worker"].metadata.name
}

output "secret_name" {
  description = "Name of the Secret holding REDIS_URL, DATABASE_URL and the keys."
  value       = kubernetes_secret_v1.gateway.metadata[0].name
}
