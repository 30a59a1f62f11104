// An SQS consumer under the real aws-lambda-ric: each good message is forwarded to the queue OUT_QUEUE with the AWS SDK
// for JavaScript v3 (which reaches the emulator's SQS endpoint through AWS_ENDPOINT_URL, as it reaches SQS on
// AWS), each bad one is named in batchItemFailures, so only it comes back (and, with a redrive policy, ends in
// the dead-letter queue). The client is made during INIT and kept across frozen invocations.
const { GetQueueUrlCommand, SQSClient, SendMessageCommand } = require("@aws-sdk/client-sqs");

const sqs = new SQSClient({});
let outQueueUrl;

exports.handler = async (event) => {
  outQueueUrl ??= (await sqs.send(new GetQueueUrlCommand({ QueueName: process.env.OUT_QUEUE }))).QueueUrl;
  const batchItemFailures = [];
  for (const record of event.Records) {
    const body = JSON.parse(record.body);
    if (body.bad) {
      console.log(`failed: message ${body.id}`);
      batchItemFailures.push({ itemIdentifier: record.messageId });
      continue;
    }
    await sqs.send(new SendMessageCommand({ QueueUrl: outQueueUrl, MessageBody: record.body }));
  }
  return { batchItemFailures };
};
