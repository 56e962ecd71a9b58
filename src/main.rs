//! mp-demo: teaches multiprocessing by running it. All the work is in the library; this
//! only hands over the exit code.

fn main() -> std::process::ExitCode {
    mp_demo::main()
}
