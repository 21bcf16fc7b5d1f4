// bench_client.cc — gRPC C++ peer of orpc-bench-client: a closed-loop load
// generator for grpc.testing.BenchmarkService over plaintext HTTP/2 (h2c).
//
//   bench_client --target=host:port --channels=C --outstanding=M --seconds=T
//                --req_size=B --resp_size=B [--rpc=unary|streaming]
//                [--warmup=S] [--threads=N]
//
// C channels, each its own TCP connection (every channel gets a private
// subchannel pool and a distinct channel argument, so gRPC cannot merge
// them), with M RPCs outstanding on each at all times: as soon as one ends,
// the next starts.  For --rpc=streaming each of the M slots is one long-lived
// StreamingCall used ping-pong (write one request, read one response), and an
// "RPC" is one request/response round trip on it.
//
// Every response is checked (status OK, payload of exactly resp_size bytes).
// RPCs that end inside the measurement window — the --seconds after the
// first --warmup seconds (default 1) — are counted and their latency (start to
// end, in nanoseconds) kept; the percentiles are nearest-rank over all of
// them.  Output, on stdout, exactly one line:
//
//   qps=<n> p50_us=<n> p90_us=<n> p99_us=<n> p999_us=<n> ok=<n> errors=<n>
//
// The RPCs run on --threads completion-queue threads (default: the number of
// CPUs), channel i on thread i % threads, as in gRPC's qps async client.
// Exit status 0 when ok > 0 and errors == 0, 1 otherwise, 2 on bad usage.
#include <grpcpp/grpcpp.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc/testing/benchmark_service.grpc.pb.h"

namespace {

using grpc::testing::BenchmarkService;
using grpc::testing::SimpleRequest;
using grpc::testing::SimpleResponse;
using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

// Shared by all threads.  The window is [win_start, win_end) in NowNs().
struct Run {
  std::atomic<int64_t> win_start{INT64_MAX};
  std::atomic<int64_t> win_end{INT64_MAX};
  std::atomic<bool> stop{false};
  std::atomic<int> active{0};  // slots with an RPC or stream in flight
  size_t resp_size = 0;
  SimpleRequest req;
};

// What one completion-queue thread measured.
struct Stats {
  std::vector<int64_t> lat_ns;
  uint64_t ok = 0;
  uint64_t errors = 0;
};

class Slot {
 public:
  Slot(Run* run, Stats* stats, BenchmarkService::Stub* stub,
       grpc::CompletionQueue* cq)
      : run_(run), stats_(stats), stub_(stub), cq_(cq) {}
  virtual ~Slot() = default;
  virtual void Start() = 0;
  // Handles the completion of the operation pending on this slot.
  virtual void Proceed(bool ok) = 0;
  // Cancels whatever is in flight (any thread).
  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    if (ctx_) ctx_->TryCancel();
  }

 protected:
  // Counts one finished RPC if it ended inside the window.
  void Record(int64_t start, int64_t end, bool good) {
    if (end < run_->win_start.load(std::memory_order_relaxed) ||
        end >= run_->win_end.load(std::memory_order_relaxed))
      return;
    if (good) {
      stats_->ok++;
      stats_->lat_ns.push_back(end - start);
    } else {
      stats_->errors++;
    }
  }
  bool Good(const SimpleResponse& r) const {
    return r.payload().body().size() == run_->resp_size;
  }
  // A fresh context for the next call.  The subclass must first drop its
  // reader or stream: gRPC allocates those in the old call's arena, which
  // goes away with the old context.
  void NewContext() {
    std::lock_guard<std::mutex> lock(mu_);
    ctx_ = std::make_unique<grpc::ClientContext>();
  }
  // The slot has nothing in flight any more.
  void Idle() { run_->active.fetch_sub(1); }

  Run* run_;
  Stats* stats_;
  BenchmarkService::Stub* stub_;
  grpc::CompletionQueue* cq_;
  std::mutex mu_;  // guards ctx_ replacement against Cancel()
  std::unique_ptr<grpc::ClientContext> ctx_;
};

class UnarySlot final : public Slot {
 public:
  using Slot::Slot;
  void Start() override {
    run_->active.fetch_add(1);
    Issue();
  }
  void Proceed(bool) override {
    int64_t end = NowNs();
    Record(start_, end, status_.ok() && Good(resp_));
    if (run_->stop.load(std::memory_order_relaxed)) {
      Idle();
      return;
    }
    Issue();
  }

 private:
  void Issue() {
    reader_.reset();
    NewContext();
    resp_.Clear();
    start_ = NowNs();
    reader_ = stub_->PrepareAsyncUnaryCall(ctx_.get(), run_->req, cq_);
    reader_->StartCall();
    reader_->Finish(&resp_, &status_, this);
  }

  int64_t start_ = 0;
  SimpleResponse resp_;
  grpc::Status status_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<SimpleResponse>> reader_;
};

class StreamSlot final : public Slot {
 public:
  using Slot::Slot;
  void Start() override {
    run_->active.fetch_add(1);
    Open();
  }
  void Proceed(bool ok) override {
    switch (state_) {
      case kStarting:
        if (!ok) return Fail();
        return Write();
      case kWriting:
        if (!ok) return Fail();
        state_ = kReading;
        resp_.Clear();
        stream_->Read(&resp_, this);
        return;
      case kReading: {
        int64_t end = NowNs();
        if (!ok) return Fail();
        Record(start_, end, Good(resp_));
        if (run_->stop.load(std::memory_order_relaxed)) {
          state_ = kClosing;
          stream_->WritesDone(this);
          return;
        }
        return Write();
      }
      case kClosing:
        state_ = kFinishing;
        stream_->Finish(&status_, this);
        return;
      case kFinishing:
        if (failed_) {
          failed_ = false;
          // The stream broke mid-flight: one error for the lost round trip,
          // then a fresh stream, unless the run is over.
          Record(start_, NowNs(), false);
          if (!run_->stop.load(std::memory_order_relaxed)) return Open();
        }
        Idle();
        return;
    }
  }

 private:
  void Open() {
    stream_.reset();
    NewContext();
    failed_ = false;
    state_ = kStarting;
    stream_ = stub_->PrepareAsyncStreamingCall(ctx_.get(), cq_);
    stream_->StartCall(this);
  }
  void Write() {
    state_ = kWriting;
    start_ = NowNs();
    stream_->Write(run_->req, this);
  }
  // A read, write or start failed: collect the status, then count the error.
  void Fail() {
    failed_ = true;
    state_ = kFinishing;
    stream_->Finish(&status_, this);
  }

  enum { kStarting, kWriting, kReading, kClosing, kFinishing } state_;
  bool failed_ = false;
  int64_t start_ = 0;
  SimpleResponse resp_;
  grpc::Status status_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<SimpleRequest, SimpleResponse>>
      stream_;
};

void Drive(grpc::CompletionQueue* cq) {
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) static_cast<Slot*>(tag)->Proceed(ok);
}

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr,
               "bench_client: %s\n"
               "usage: bench_client --target=host:port --channels=C "
               "--outstanding=M --seconds=T --req_size=B --resp_size=B "
               "[--rpc=unary|streaming] [--warmup=S] [--threads=N]\n",
               msg);
  std::exit(2);
}

double ParseNum(const char* s, const char* flag, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi))
    Usage((std::string("bad value for ") + flag).c_str());
  return v;
}

bool Flag(const char* arg, const char* name, const char** val) {
  size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) || arg[n] != '=') return false;
  *val = arg + n + 1;
  return true;
}

int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest value with at least p of the samples <= it.
  size_t rank = static_cast<size_t>(p * sorted.size() + 0.999999999);
  if (rank < 1) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return sorted[rank - 1];
}

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  long channels = -1, outstanding = -1, req_size = -1, resp_size = -1;
  double seconds = -1, warmup = 1;
  long threads = static_cast<long>(std::thread::hardware_concurrency());
  if (threads < 1) threads = 1;
  bool streaming = false;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v;
    if (Flag(a, "--target", &v))
      target = v;
    else if (Flag(a, "--channels", &v))
      channels = static_cast<long>(ParseNum(v, "--channels", 1, 100000));
    else if (Flag(a, "--outstanding", &v))
      outstanding = static_cast<long>(ParseNum(v, "--outstanding", 1, 100000));
    else if (Flag(a, "--seconds", &v))
      seconds = ParseNum(v, "--seconds", 0.001, 86400);
    else if (Flag(a, "--warmup", &v))
      warmup = ParseNum(v, "--warmup", 0, 86400);
    else if (Flag(a, "--req_size", &v))
      req_size = static_cast<long>(ParseNum(v, "--req_size", 0, 4 << 20));
    else if (Flag(a, "--resp_size", &v))
      resp_size = static_cast<long>(ParseNum(v, "--resp_size", 0, 4 << 20));
    else if (Flag(a, "--threads", &v))
      threads = static_cast<long>(ParseNum(v, "--threads", 1, 1024));
    else if (Flag(a, "--rpc", &v)) {
      if (!std::strcmp(v, "unary"))
        streaming = false;
      else if (!std::strcmp(v, "streaming"))
        streaming = true;
      else
        Usage("--rpc must be unary or streaming");
    } else {
      Usage((std::string("unknown argument ") + a).c_str());
    }
  }
  if (target.empty() || channels < 0 || outstanding < 0 || seconds < 0 ||
      req_size < 0 || resp_size < 0)
    Usage("--target, --channels, --outstanding, --seconds, --req_size and "
          "--resp_size are required");
  if (threads > channels) threads = channels;

  Run run;
  run.resp_size = static_cast<size_t>(resp_size);
  run.req.set_response_size(static_cast<int32_t>(resp_size));
  run.req.mutable_payload()->mutable_body()->assign(
      static_cast<size_t>(req_size), '\0');

  // Channels, each on a connection of its own, all connected up front.
  std::vector<std::unique_ptr<BenchmarkService::Stub>> stubs;
  auto connect_deadline =
      std::chrono::system_clock::now() + std::chrono::seconds(10);
  for (long i = 0; i < channels; i++) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("grpc.bench.channel_id", static_cast<int>(i));
    auto ch = grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args);
    if (!ch->WaitForConnected(connect_deadline)) {
      std::fprintf(stderr, "bench_client: cannot connect to %s\n",
                   target.c_str());
      return 1;
    }
    stubs.push_back(BenchmarkService::NewStub(ch));
  }

  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs;
  std::vector<Stats> stats(static_cast<size_t>(threads));
  for (long t = 0; t < threads; t++) {
    cqs.push_back(std::make_unique<grpc::CompletionQueue>());
    // Enough room for a generous rate without regrowing mid-run.
    stats[static_cast<size_t>(t)].lat_ns.reserve(1 << 20);
  }
  std::vector<std::unique_ptr<Slot>> slots;
  for (long i = 0; i < channels; i++) {
    size_t t = static_cast<size_t>(i % threads);
    for (long j = 0; j < outstanding; j++) {
      if (streaming)
        slots.push_back(std::make_unique<StreamSlot>(
            &run, &stats[t], stubs[static_cast<size_t>(i)].get(),
            cqs[t].get()));
      else
        slots.push_back(std::make_unique<UnarySlot>(
            &run, &stats[t], stubs[static_cast<size_t>(i)].get(),
            cqs[t].get()));
    }
  }
  std::vector<std::thread> workers;
  for (auto& cq : cqs) workers.emplace_back(Drive, cq.get());

  auto sleep_s = [](double s) {
    std::this_thread::sleep_for(std::chrono::duration<double>(s));
  };
  int64_t t0 = NowNs();
  int64_t ws = t0 + static_cast<int64_t>(warmup * 1e9);
  int64_t we = ws + static_cast<int64_t>(seconds * 1e9);
  run.win_start.store(ws);
  run.win_end.store(we);
  for (auto& s : slots) s->Start();
  int64_t now = NowNs();
  if (we > now) sleep_s(static_cast<double>(we - now) / 1e9);
  run.stop.store(true);

  // Let the RPCs in flight end by themselves; cancel any that linger.
  auto drain = [&run](double limit_s) {
    int64_t until = NowNs() + static_cast<int64_t>(limit_s * 1e9);
    while (run.active.load() > 0 && NowNs() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return run.active.load() == 0;
  };
  bool drained = drain(5);
  if (!drained) {
    for (auto& s : slots) s->Cancel();
    drained = drain(2);
  }

  Stats all;
  for (auto& s : stats) {
    all.ok += s.ok;
    all.errors += s.errors;
    all.lat_ns.insert(all.lat_ns.end(), s.lat_ns.begin(), s.lat_ns.end());
  }
  std::sort(all.lat_ns.begin(), all.lat_ns.end());
  double qps = static_cast<double>(all.ok) / seconds;
  auto us = [&all](double p) {
    return static_cast<long long>(Percentile(all.lat_ns, p) / 1000);
  };
  std::printf(
      "qps=%.0f p50_us=%lld p90_us=%lld p99_us=%lld p999_us=%lld "
      "ok=%" PRIu64 " errors=%" PRIu64 "\n",
      qps, us(0.50), us(0.90), us(0.99), us(0.999), all.ok, all.errors);
  std::fflush(stdout);
  int rc = all.ok > 0 && all.errors == 0 ? 0 : 1;

  if (!drained) {
    std::fprintf(stderr, "bench_client: RPCs still in flight at exit\n");
    std::_Exit(rc);
  }
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& t : workers) t.join();
  return rc;
}
