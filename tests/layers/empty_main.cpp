// The program of the layer checks (tests/CMakeLists.txt): it does nothing; what matters is that it
// links with one layer's library whole and only the layers below it.
int main() { return 0; }
