pub struct QuantDB;
