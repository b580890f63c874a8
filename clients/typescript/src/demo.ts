/**
 * The generated TypeScript client against a real loanbilling server: registers
 * a borrower, lends the canonical loan (5,000,000 IDR at 1000 bps over 50
 * weeks, started 7 days before the server's business date, so that week 1 is
 * due today), pays week 1 (110,000) on its due date with an idempotency key,
 * retries that payment (answered as a replay, not paid twice), reads what is
 * outstanding, and follows the loan's notification stream until the payment's
 * event arrives. Prints a JSON summary on stdout and exits 0; on any failure
 * prints the reason on stderr and exits 1. It never hangs: every call has a
 * deadline, and the whole run is bounded by DEMO_TIMEOUT_S.
 *
 *   node dist/demo.js [ADDRESS]
 *
 * ADDRESS (or LOANBILLING_ADDRESS): host:port of a plaintext server; default
 * 127.0.0.1:50051 (`make run`). DEMO_TIMEOUT_S: bound of the whole run, in
 * seconds; default 30.
 *
 * Money is int64 on the wire and bigint here (ts-proto forceLong=bigint):
 * never a JS number. The JSON summary shows int64 fields as strings, like
 * proto3 JSON.
 */
import { randomUUID } from "node:crypto";
import {
  type CallOptions,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
  status as grpcStatus,
} from "@grpc/grpc-js";
import { DateMessage } from "./gen/google/type/date";
import {
  AnalyticsServiceClient,
  GetPortfolioSummaryRequest,
} from "./gen/microfin/loanbilling/v1/analytics_service";
import { Event, EventKind } from "./gen/microfin/loanbilling/v1/events";
import {
  CreateCustomerRequest,
  CreateLoanRequest,
  GetOutstandingRequest,
  GetOutstandingResponse,
  LoanServiceClient,
  MakePaymentRequest,
  type MakePaymentResponse,
} from "./gen/microfin/loanbilling/v1/loan_service";
import {
  NotificationServiceClient,
  StreamNotificationsRequest,
  type StreamNotificationsResponse,
} from "./gen/microfin/loanbilling/v1/notification_service";
import { Customer, Loan, Payment } from "./gen/microfin/loanbilling/v1/resources";

const PRINCIPAL = 5_000_000n;
const RATE_BPS = 1000;
const WEEKS = 50;
const WEEKLY_PAYMENT = 110_000n;
const TOTAL = 5_500_000n;
const RPC_TIMEOUT_MS = 10_000;

class DemoError extends Error {}

function check(condition: boolean, what: string): void {
  if (!condition) throw new DemoError(`unexpected answer: ${what}`);
}

// ---- dates (google.type.Date, calendar arithmetic in UTC) ----

function toUtc(date: DateMessage): number {
  return Date.UTC(date.year, date.month - 1, date.day);
}

function addDays(date: DateMessage, days: number): DateMessage {
  const d = new Date(toUtc(date) + days * 86_400_000);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

function iso(date: DateMessage | undefined): string {
  if (date === undefined) return "";
  return new Date(toUtc(date)).toISOString().slice(0, 10);
}

// ---- calls ----

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

function describe(error: ServiceError): string {
  const name = grpcStatus[error.code] ?? String(error.code);
  return `${name}: ${error.details || error.message}`;
}

/**
 * One unary call, with a deadline of RPC_TIMEOUT_MS but not past the run's;
 * a gRPC error rejects with its status.
 */
function unary<Req, Res>(
  name: string,
  method: Unary<Req, Res>,
  request: Req,
  runDeadline: number,
): Promise<Res> {
  const deadline = Math.min(Date.now() + RPC_TIMEOUT_MS, runDeadline);
  return new Promise((resolve, reject) => {
    method(request, new Metadata(), { deadline }, (error, response) => {
      if (error) reject(new DemoError(`${name} failed: ${describe(error)}`));
      else resolve(response);
    });
  });
}

function waitForReady(client: LoanServiceClient, address: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (error) => {
      if (error) reject(new DemoError(`no server ready at ${address}: ${error.message}`));
      else resolve();
    });
  });
}

/** JSON with bigint as a string (JSON.stringify refuses bigint). */
function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v), 2);
}

// ---- the demo ----

async function main(address: string, deadline: number): Promise<Record<string, unknown>> {
  const started = Date.now();
  const creds = credentials.createInsecure();
  const loans = new LoanServiceClient(address, creds);
  const analytics = new AnalyticsServiceClient(address, creds);
  const notifications = new NotificationServiceClient(address, creds);
  const run = randomUUID();
  const call = <Req, Res>(name: string, method: Unary<Req, Res>, request: Req) =>
    unary(name, method, request, deadline);
  try {
    await waitForReady(loans, address, Math.min(RPC_TIMEOUT_MS, deadline - Date.now()));

    // The server's business date (today in its business time zone): the
    // portfolio summary, asked without as_of, answers at it.
    const summary = await call(
      "AnalyticsService.GetPortfolioSummary",
      analytics.getPortfolioSummary.bind(analytics),
      GetPortfolioSummaryRequest.fromPartial({}),
    );
    const today = summary.asOf;
    check(today !== undefined, "GetPortfolioSummary answered no as_of");
    const businessDate = today as DateMessage;

    const { customer } = await call(
      "LoanService.CreateCustomer",
      loans.createCustomer.bind(loans),
      CreateCustomerRequest.fromPartial({
        name: "Dewi Lestari",
        email: `dewi.${run.slice(0, 8)}@example.com`,
        phone: "+62 812-3456-7890",
        requestId: `ts-demo-${run}-customer`,
      }),
    );
    check(customer !== undefined && customer.id > 0n, "CreateCustomer answered no customer");
    const customerId = (customer as Customer).id;

    // Installment k is due on start + 7k days: week 1 falls due today.
    const startDate = addDays(businessDate, -7);
    const { loan } = await call(
      "LoanService.CreateLoan",
      loans.createLoan.bind(loans),
      CreateLoanRequest.fromPartial({
        customerId,
        principalAmount: PRINCIPAL,
        interestRateBps: RATE_BPS,
        weeks: WEEKS,
        startDate,
        currencyCode: "IDR",
        requestId: `ts-demo-${run}-loan`,
      }),
    );
    check(loan !== undefined && loan.id > 0n, "CreateLoan answered no loan");
    const created = loan as Loan;
    check(created.totalAmount === TOTAL, `total_amount ${created.totalAmount}, not ${TOTAL}`);
    check(created.weeklyPayment === WEEKLY_PAYMENT, `weekly_payment ${created.weeklyPayment}`);
    check(created.schedule.length === WEEKS, `${created.schedule.length} schedule lines`);
    const firstDue = created.schedule[0].dueDate as DateMessage;
    check(iso(firstDue) === iso(businessDate), `week 1 due ${iso(firstDue)}, not today`);

    // Follow the loan's stream from the first event; it replays what is
    // stored, then delivers new events as they commit.
    const events: Event[] = [];
    let heartbeats = 0;
    let paymentId: bigint | undefined;
    let settle: { resolve: (e: Event) => void; reject: (e: Error) => void } | undefined;
    const paymentEvent = new Promise<Event>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // Awaited below, once paid; a stream failure before then must not count
    // as an unhandled rejection.
    paymentEvent.catch(() => undefined);
    const findPaymentEvent = () => {
      const found = events.find(
        (e) => e.kind === EventKind.EVENT_KIND_PAYMENT_RECEIVED && e.paymentId === paymentId,
      );
      if (paymentId !== undefined && found) settle?.resolve(found);
    };
    const stream = notifications.streamNotifications(
      StreamNotificationsRequest.fromPartial({
        afterSequence: 0n,
        loanId: created.id,
        kinds: [EventKind.EVENT_KIND_LOAN_CREATED, EventKind.EVENT_KIND_PAYMENT_RECEIVED],
      }),
      new Metadata(),
      { deadline },
    );
    let cancelled = false;
    stream.on("data", (message: StreamNotificationsResponse) => {
      if (message.event) {
        events.push(message.event);
        findPaymentEvent();
      } else if (message.heartbeat) {
        heartbeats += 1;
      }
    });
    stream.on("error", (error: ServiceError) => {
      if (!cancelled) {
        settle?.reject(new DemoError(`NotificationService.StreamNotifications failed: ${describe(error)}`));
      }
    });
    stream.on("end", () => {
      if (!cancelled) settle?.reject(new DemoError("the notification stream ended early"));
    });

    const payment = MakePaymentRequest.fromPartial({
      loanId: created.id,
      amount: WEEKLY_PAYMENT,
      paymentDate: firstDue,
      idempotencyKey: `ts-demo-${run}-w1`,
    });
    const makePayment = loans.makePayment.bind(loans);
    const paid: MakePaymentResponse = await call("LoanService.MakePayment", makePayment, payment);
    check(paid.payment !== undefined && !paid.replayed, "MakePayment recorded no payment");
    const recorded = paid.payment as Payment;
    check(recorded.amount === WEEKLY_PAYMENT, `payment amount ${recorded.amount}`);
    check(
      recorded.settledWeekNumbers.length === 1 && recorded.settledWeekNumbers[0] === 1,
      `settled weeks ${recorded.settledWeekNumbers}`,
    );
    check(paid.outstandingAmount === TOTAL - WEEKLY_PAYMENT, `outstanding ${paid.outstandingAmount}`);

    // A retry with the same key (a lost answer, say) pays nothing twice.
    const retried = await call("LoanService.MakePayment (retry)", makePayment, payment);
    check(retried.replayed && retried.payment?.id === recorded.id, "the retry was not a replay");

    const outstanding: GetOutstandingResponse = await call(
      "LoanService.GetOutstanding",
      loans.getOutstanding.bind(loans),
      GetOutstandingRequest.fromPartial({ loanId: created.id, asOf: businessDate }),
    );
    check(
      outstanding.outstandingAmount === created.totalAmount - recorded.amount,
      `GetOutstanding ${outstanding.outstandingAmount}`,
    );

    paymentId = recorded.id;
    findPaymentEvent();
    const received = await paymentEvent;
    cancelled = true;
    stream.cancel();
    check(
      events[0]?.kind === EventKind.EVENT_KIND_LOAN_CREATED,
      "the stream did not start with the loan's creation",
    );
    check(received.amount === recorded.amount, `event amount ${received.amount}`);
    check(
      received.outstandingAmount === outstanding.outstandingAmount,
      `event outstanding ${received.outstandingAmount}`,
    );

    return {
      ok: true,
      address,
      businessDate: iso(businessDate),
      customer: Customer.toJSON(customer as Customer),
      // The 50-line schedule left out.
      loan: Loan.toJSON({ ...created, schedule: [] }),
      firstDueDate: iso(firstDue),
      payment: Payment.toJSON(recorded),
      paymentReplayedOnRetry: retried.replayed,
      outstanding: GetOutstandingResponse.toJSON(outstanding),
      events: events.map((e) => Event.toJSON(e)),
      heartbeats,
      elapsedMs: Date.now() - started,
    };
  } finally {
    loans.close();
    analytics.close();
    notifications.close();
  }
}

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

const address = process.argv[2] || process.env.LOANBILLING_ADDRESS || "127.0.0.1:50051";
const timeoutS = Number(process.env.DEMO_TIMEOUT_S ?? "30");
if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
  fail(`DEMO_TIMEOUT_S=${process.env.DEMO_TIMEOUT_S} is not a positive number`);
}
const deadline = Date.now() + timeoutS * 1000;
// The backstop, a little after the deadline that every call and the stream
// carry (their own errors say more): whatever is still pending then, the run
// fails. Not unref()ed: it also keeps the process from exiting 0 on a promise
// that never settles.
const BACKSTOP_GRACE_MS = 2_000;
setTimeout(
  () => fail(`timed out after ${timeoutS}s against ${address}`),
  timeoutS * 1000 + BACKSTOP_GRACE_MS,
);

main(address, deadline).then(
  (summary) => {
    // Exit once the summary is written (stdout may be an asynchronous pipe).
    process.stdout.write(`${toJson(summary)}\n`, () => process.exit(0));
  },
  (error: unknown) => fail(error instanceof Error ? error.message : String(error)),
);
