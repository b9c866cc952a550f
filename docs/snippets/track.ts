// Track a job with jobhook right after submitting it to the provider.
//
// Needs @aws-sdk/client-sqs and a role (or user) with the stack's
// TrackJobsPolicy attached; JOBHOOK_TRACK_QUEUE_URL is the stack's
// TrackQueueUrl output. Run as `npx tsx track.ts <source> <job id>`.
import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";

// The endpoint comes from the region (or AWS_ENDPOINT_URL), not from the
// queue URL's host, which a local emulator does not answer on.
const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });

/** Ask jobhook to follow `jobId`: it is polled until it ends, whether or not
 * the provider's webhooks arrive. Sending it twice changes nothing. */
export async function track(source: string, jobId: string): Promise<void> {
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: process.env.JOBHOOK_TRACK_QUEUE_URL,
      MessageBody: JSON.stringify({ source, job_id: jobId }),
    }),
  );
}

const [source, jobId] = process.argv.slice(2);
if (source && jobId) {
  await track(source, jobId);
}
