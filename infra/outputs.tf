output "training_url" {
  value = "https://${aws_lb.main.dns_name}/train"
}

output "images_bucket" {
  value = aws_s3_bucket.images.bucket
}

output "database_endpoint" {
  value = aws_db_instance.main.address
}
