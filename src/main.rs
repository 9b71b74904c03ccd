fn main() -> std::process::ExitCode {
    iamdesk::cli::main()
}
