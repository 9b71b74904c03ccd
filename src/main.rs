// glibc's malloc keeps freed per-thread arenas: RSS only grew under load (issue 17 item 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    iamdesk::cli::main()
}
