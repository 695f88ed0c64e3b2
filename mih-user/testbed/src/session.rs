pub struct SessionChecker;
impl SessionChecker {
    pub fn new(
        _seed: u64,
        _state_bytes: u32,
        _region: std::ops::Range<u32>,
        _max_pad: u16,
    ) -> SessionChecker {
        SessionChecker
    }
    pub fn next_request(&mut self, _out: &mut Vec<u8>) {}
    pub fn on_bytes(&mut self, _data: &[u8]) -> Result<usize, String> {
        Ok(0)
    }
    pub fn outstanding(&self) -> usize {
        0
    }
    pub fn answered(&self) -> u64 {
        0
    }
}
