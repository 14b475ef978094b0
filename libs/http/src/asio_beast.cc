// Separate compilation of Boost.Asio and Boost.Beast: their implementation is compiled here once
// instead of in every translation unit that includes them (keeps build times down).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
