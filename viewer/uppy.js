// The upload page's Uppy build (make viewer-assets bundles it with esbuild into the
// library's static/uppy/): the core and the S3 multipart uploader, nothing else.
export { default as Uppy } from "@uppy/core";
export { default as AwsS3 } from "@uppy/aws-s3";
