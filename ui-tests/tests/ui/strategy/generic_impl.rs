use lazyforge::{strategy, Result};

struct Wrapper<T>(T);

#[strategy(unified)]
impl<T> Wrapper<T> {
    fn unified(&self) -> Result<()> {
        Ok(())
    }
}

fn main() {}
