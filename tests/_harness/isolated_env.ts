/**
 * Test harness: an environment for a `planetary serve` subprocess with no cloud credentials
 * anywhere and every metadata lookup turned off or pointed at a closed loopback port, so that
 * the SDKs' default credential chains end quickly and no test traffic leaves this machine.
 *
 * @module
 */

const HOME = Deno.env.get("HOME") ?? "/root";

/**
 * An environment with no cloud credentials anywhere and every metadata lookup turned off or
 * pointed at a closed loopback port, so that the SDKs' default chains end quickly, here.
 *
 * @returns The variables (on top of this process's) and the empty `HOME` folder to remove.
 */
export async function isolatedEnv(): Promise<{ env: Record<string, string>; home: string }> {
  const home = await Deno.makeTempDir({ prefix: "planetary-home-" });
  return {
    home,
    env: {
      HOME: home,
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${HOME}/.cache/deno`,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: `${home}/.aws/config`,
      AWS_SHARED_CREDENTIALS_FILE: `${home}/.aws/credentials`,
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_SESSION_TOKEN: "",
      AWS_PROFILE: "",
      AWS_WEB_IDENTITY_TOKEN_FILE: "",
      AWS_CONTAINER_CREDENTIALS_FULL_URI: "",
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "",
      AWS_REGION: "us-east-1",
      GOOGLE_APPLICATION_CREDENTIALS: "",
      CLOUDSDK_CONFIG: `${home}/.config/gcloud`,
      METADATA_SERVER_DETECTION: "none",
      GCE_METADATA_HOST: "127.0.0.1:1",
      GCE_METADATA_IP: "127.0.0.1:1",
      PLANETARY_S3_ENDPOINT: "",
      PLANETARY_GCS_ENDPOINT: "",
      PLANETARY_S3: "",
      PLANETARY_GCS: "",
      PLANETARY_STORAGE_SCHEMES: "",
    },
  };
}
