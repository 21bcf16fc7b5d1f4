// bench_server.cc — gRPC C++ peer of orpc-bench-server: a plaintext (h2c)
// grpc.testing.BenchmarkService server on 127.0.0.1.
//
//   bench_server --port=N [--threads=N] [--host=ADDR]
//
// Built the way gRPC's own qps benchmark server is (test/cpp/qps/
// server_async.cc): the async completion-queue API, one completion queue per
// thread, each queue pre-loaded with many requested calls so that a new call
// never waits for a thread to ask for it.
//
//   UnaryCall      answers with a payload of request.response_size zero bytes.
//   StreamingCall  ping-pong: one such response per request, in order; the
//                  call ends with OK when the client half-closes.
//
// Prints "listening on <port>" (the bound port, so --port=0 works) once it
// accepts calls, then runs until SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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

// Calls requested in advance on each completion queue.
constexpr int kUnaryPerCq = 1000;
constexpr int kStreamPerCq = 200;
// Largest response_size honoured (gRPC's default receive limit is 4 MiB).
constexpr int kMaxResponse = 4 * 1024 * 1024 - 64;

// Fills `resp` as asked by `req`; false when the size is out of range.
bool FillResponse(const SimpleRequest& req, SimpleResponse* resp) {
  int n = req.response_size();
  if (n < 0 || n > kMaxResponse) return false;
  if (n > 0) {
    grpc::testing::Payload* p = resp->mutable_payload();
    p->set_type(req.response_type());
    p->mutable_body()->assign(static_cast<size_t>(n), '\0');
  }
  return true;
}

const grpc::Status kBadSize(grpc::StatusCode::INVALID_ARGUMENT,
                            "response_size out of range");

// A completion queue and whether it is shutting down: once set, no call is
// requested on it any more (gRPC forbids new operations on a queue after
// its Shutdown()), the slot deletes itself instead.
struct Cq {
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::mutex mu;
  bool shutdown = false;
};

// A call in progress; the completion-queue tag is the Call itself.
class Call {
 public:
  virtual ~Call() = default;
  // Advances the state machine after the last operation completed with `ok`.
  virtual void Proceed(bool ok) = 0;
};

// One reusable slot for UnaryCall: request, answer, finish, request again.
class UnaryCall final : public Call {
 public:
  UnaryCall(BenchmarkService::AsyncService* svc, Cq* cq) : svc_(svc), cq_(cq) {
    Request();
  }

  void Proceed(bool ok) override {
    if (state_ == kRequested) {
      if (!ok) {  // server shutting down
        delete this;
        return;
      }
      state_ = kFinishing;
      resp_.Clear();
      if (FillResponse(req_, &resp_))
        responder_->Finish(resp_, grpc::Status::OK, this);
      else
        responder_->FinishWithError(kBadSize, this);
      return;
    }
    // kFinishing: done (sent or cancelled); take the next call.
    Request();
  }

 private:
  void Request() {
    std::lock_guard<std::mutex> lock(cq_->mu);
    if (cq_->shutdown) {
      delete this;
      return;
    }
    ctx_ = std::make_unique<grpc::ServerContext>();
    responder_ =
        std::make_unique<grpc::ServerAsyncResponseWriter<SimpleResponse>>(
            ctx_.get());
    state_ = kRequested;
    svc_->RequestUnaryCall(ctx_.get(), &req_, responder_.get(), cq_->cq.get(),
                           cq_->cq.get(), this);
  }

  enum { kRequested, kFinishing } state_ = kRequested;
  BenchmarkService::AsyncService* svc_;
  Cq* cq_;
  std::unique_ptr<grpc::ServerContext> ctx_;
  std::unique_ptr<grpc::ServerAsyncResponseWriter<SimpleResponse>> responder_;
  SimpleRequest req_;
  SimpleResponse resp_;
};

// One reusable slot for StreamingCall: read, write, read, ... finish.
class StreamingCall final : public Call {
 public:
  StreamingCall(BenchmarkService::AsyncService* svc, Cq* cq) : svc_(svc), cq_(cq) {
    Request();
  }

  void Proceed(bool ok) override {
    switch (state_) {
      case kRequested:
        if (!ok) {  // server shutting down
          delete this;
          return;
        }
        Read();
        return;
      case kReading:
        if (!ok) {  // client half-closed (or the call died)
          state_ = kFinishing;
          stream_->Finish(grpc::Status::OK, this);
          return;
        }
        resp_.Clear();
        if (!FillResponse(req_, &resp_)) {
          state_ = kFinishing;
          stream_->Finish(kBadSize, this);
          return;
        }
        state_ = kWriting;
        stream_->Write(resp_, this);
        return;
      case kWriting:
        if (!ok) {  // the call is gone
          state_ = kFinishing;
          stream_->Finish(grpc::Status::CANCELLED, this);
          return;
        }
        Read();
        return;
      case kFinishing:
        Request();
        return;
    }
  }

 private:
  void Request() {
    std::lock_guard<std::mutex> lock(cq_->mu);
    if (cq_->shutdown) {
      delete this;
      return;
    }
    ctx_ = std::make_unique<grpc::ServerContext>();
    stream_ = std::make_unique<
        grpc::ServerAsyncReaderWriter<SimpleResponse, SimpleRequest>>(
        ctx_.get());
    state_ = kRequested;
    svc_->RequestStreamingCall(ctx_.get(), stream_.get(), cq_->cq.get(),
                               cq_->cq.get(), this);
  }
  void Read() {
    state_ = kReading;
    stream_->Read(&req_, this);
  }

  enum { kRequested, kReading, kWriting, kFinishing } state_ = kRequested;
  BenchmarkService::AsyncService* svc_;
  Cq* cq_;
  std::unique_ptr<grpc::ServerContext> ctx_;
  std::unique_ptr<grpc::ServerAsyncReaderWriter<SimpleResponse, SimpleRequest>>
      stream_;
  SimpleRequest req_;
  SimpleResponse resp_;
};

void ServeCq(grpc::ServerCompletionQueue* cq) {
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) static_cast<Call*>(tag)->Proceed(ok);
}

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr,
               "bench_server: %s\n"
               "usage: bench_server --port=N [--threads=N] [--host=ADDR]\n",
               msg);
  std::exit(2);
}

long ParseInt(const char* s, const char* flag, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    Usage((std::string("bad value for ") + flag).c_str());
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  long port = -1;
  long threads = static_cast<long>(std::thread::hardware_concurrency());
  if (threads < 1) threads = 1;
  std::string host = "127.0.0.1";
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (!std::strncmp(a, "--port=", 7))
      port = ParseInt(a + 7, "--port", 0, 65535);
    else if (!std::strncmp(a, "--threads=", 10))
      threads = ParseInt(a + 10, "--threads", 1, 1024);
    else if (!std::strncmp(a, "--host=", 7))
      host = a + 7;
    else
      Usage((std::string("unknown argument ") + a).c_str());
  }
  if (port < 0) Usage("--port is required");

  // SIGTERM/SIGINT are taken by sigwait() below; block them before gRPC
  // starts any thread so that every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  BenchmarkService::AsyncService service;
  grpc::ServerBuilder builder;
  int bound = 0;
  std::string addr = host.find(':') != std::string::npos
                         ? "[" + host + "]:" + std::to_string(port)
                         : host + ":" + std::to_string(port);
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<Cq>> cqs;
  for (long i = 0; i < threads; i++) {
    cqs.push_back(std::make_unique<Cq>());
    cqs.back()->cq = builder.AddCompletionQueue();
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "bench_server: cannot listen on %s\n", addr.c_str());
    return 1;
  }

  for (auto& cq : cqs) {
    for (int i = 0; i < kUnaryPerCq; i++) new UnaryCall(&service, cq.get());
    for (int i = 0; i < kStreamPerCq; i++)
      new StreamingCall(&service, cq.get());
  }
  std::vector<std::thread> workers;
  for (auto& cq : cqs) workers.emplace_back(ServeCq, cq->cq.get());

  std::printf("listening on %d\n", bound);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);

  // Should a shutdown ever hang, the default SIGALRM action ends the process.
  alarm(5);
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(500));
  for (auto& cq : cqs) {
    std::lock_guard<std::mutex> lock(cq->mu);
    cq->shutdown = true;
  }
  for (auto& cq : cqs) cq->cq->Shutdown();
  for (auto& t : workers) t.join();
  // Every slot has deleted itself: requested ones on ok=false, the others
  // when they tried to request their next call.
  return 0;
}
